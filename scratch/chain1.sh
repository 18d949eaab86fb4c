#!/bin/sh
while kill -0 10085 2>/dev/null; do sleep 10; done
cd /work/wt-world
while [ -e /tmp/sap_quiet ]; do sleep 30; done
date; echo KNOW-PRETRAINED
OMP_NUM_THREADS=1 scratch/judge /tmp/runs/pre1.bin data val 4
while [ -e /tmp/sap_quiet ]; do sleep 30; done
date; echo ALIGN
OMP_NUM_THREADS=1 ./sap -m sft -e /tmp/runs/pre1.bin -b 16 -t 128 -n 1000 -l 5e-4 -w 0 -s 1337 -i data/align.bin -j data/val_howto.bin -E none -v 250 -S 250 -o /tmp/runs/base1.bin -Y /tmp/runs/base1.resume
date
while [ -e /tmp/sap_quiet ]; do sleep 30; done
OMP_NUM_THREADS=1 scratch/judge /tmp/runs/base1.bin data val 8
date
