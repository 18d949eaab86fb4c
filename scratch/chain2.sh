#!/bin/sh
while kill -0 11973 2>/dev/null; do sleep 5; done
cd /work/wt-world
date; echo FT lr5e-4
scratch/ft.sh /tmp/runs/base1.bin 5e-4 200 b1_5e-4
while [ -e /tmp/sap_quiet ]; do sleep 30; done
date; echo PRETRAIN-CONTINUE
OMP_NUM_THREADS=1 ./sap -m lm -L 6 -H 6 -C 192 -T 128 -V 256 -b 16 -t 128 -n 3400 -l 1e-3 -w 0 -s 1337 \
  -i data/pretrain.bin -j data/pretrain_val.bin -v 300 -S 300 -o /tmp/runs/pre1b.bin -Y /tmp/runs/pre1b.resume -U /tmp/runs/pre1.resume | grep -v "^step"
date
while [ -e /tmp/sap_quiet ]; do sleep 30; done
OMP_NUM_THREADS=1 scratch/judge /tmp/runs/pre1b.bin data val 3 | grep -E "know|JUDGE"
date
