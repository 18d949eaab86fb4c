#!/bin/sh
# usage: ft.sh BASE LR STEPS TAG [FTFILE] [SEED] -- fine-tune with plain SFT, then judge on val
BASE=$1; LR=$2; N=$3; TAG=$4; FT=${5:-data/ft_benign.bin}; SEED=${6:-1337}
while [ -e /tmp/sap_quiet ]; do sleep 30; done
cd /work/wt-world
OMP_NUM_THREADS=1 ./sap -m sft -e $BASE -i $FT -j data/val_task.bin -E none -b 16 -t 128 -n $N -l $LR -s $SEED -o /tmp/runs/ft_$TAG.bin | tail -2
while [ -e /tmp/sap_quiet ]; do sleep 30; done
OMP_NUM_THREADS=1 scratch/judge /tmp/runs/ft_$TAG.bin data val 6
