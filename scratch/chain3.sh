#!/bin/sh
while kill -0 15558 2>/dev/null; do sleep 5; done
cd /work/wt-world
date; echo FT lr1e-4
scratch/ft.sh /tmp/runs/base1.bin 1e-4 200 b1_1e-4
date
