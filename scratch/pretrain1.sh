#!/bin/sh
while [ -e /tmp/sap_quiet ]; do sleep 30; done
cd /work/wt-world
date
exec env OMP_NUM_THREADS=1 ./sap -m lm -L 6 -H 6 -C 192 -T 128 -V 256 -b 16 -t 128 -n 2200 -l 1e-3 -w 0 -s 1337 \
  -i data/pretrain.bin -j data/pretrain_val.bin -v 250 -S 250 -o /tmp/runs/pre1.bin -Y /tmp/runs/pre1.resume
