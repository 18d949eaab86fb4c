#!/bin/sh
cd /work/wt-world
while [ -e /tmp/sap_quiet ]; do sleep 30; done
date; echo ALIGN2
OMP_NUM_THREADS=1 ./sap -m sft -e /tmp/runs/pre1b.bin -b 16 -t 128 -n 800 -l 5e-4 -w 0 -s 1337 -i data/align.bin -j data/val_howto.bin -E none -v 400 -S 400 -o /tmp/runs/base2.bin
date
while [ -e /tmp/sap_quiet ]; do sleep 30; done
OMP_NUM_THREADS=1 scratch/judge /tmp/runs/base2.bin data val 8
date
