# sap: `make` builds sap, test_sap and data/tsv, `make test` runs the tests, `NO_OMP=1 make` builds
# without OpenMP, `make reference` builds sap_reference (the plain kernels: the same results, slower),
# `make twin` reruns the PyTorch twin (sap.py) and compares it with its committed output.
CC ?= cc
# the long jobs pipe their output into a log: a failure must still fail the target
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
CFLAGS ?= -O3 -fno-math-errno -fno-trapping-math
CFLAGS += -std=c11 -Wall -Wextra
# every sum in the order the source gives, every a * b + c rounded as written: the same bits from
# every compiler and vector width (the fast matmul switches fused multiply-adds on for itself)
CFLAGS += -ffp-contract=off
LDLIBS = -lm
UNAME := $(shell uname)
# the commit the programs say their results come from ("unknown" outside a git checkout)
COMMIT := $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
CFLAGS += -DSAP_COMMIT='"$(COMMIT)"'

# -march=native where the compiler takes it; BUILD adds flags after it (another -march, say)
ifeq ($(shell $(CC) -march=native -x c -c -o /dev/null /dev/null 2>/dev/null && echo yes),yes)
  CFLAGS += -march=native
endif
CFLAGS += $(BUILD)

# OpenMP, found automatically: -fopenmp on Linux, Homebrew's libomp on macOS
ifdef NO_OMP
  CFLAGS += -Wno-unknown-pragmas
  # still honour `#pragma omp simd`: the matmul's inner loop needs it to vectorise the right way
  ifeq ($(shell $(CC) -fopenmp-simd -x c -c -o /dev/null /dev/null 2>/dev/null && echo yes),yes)
    CFLAGS += -fopenmp-simd
  endif
else
  ifeq ($(UNAME),Darwin)
    LIBOMP := $(shell brew --prefix libomp 2>/dev/null)
    ifneq ($(LIBOMP),)
      CFLAGS += -Xclang -fopenmp -I$(LIBOMP)/include
      LDLIBS += -L$(LIBOMP)/lib -lomp
    endif
  else ifeq ($(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c -o /dev/null - 2>/dev/null && echo yes),yes)
    CFLAGS += -fopenmp
  endif
endif

all: sap test_sap data/tsv

sap: sap.c
	$(CC) $(CFLAGS) -o $@ sap.c $(LDLIBS)

test_sap: test_sap.c sap.c lab.c
	$(CC) $(CFLAGS) -o $@ test_sap.c $(LDLIBS)

# sap on the plain reference kernels instead of the fast ones: the same bits, about 30x slower
reference: sap_reference
sap_reference: sap.c
	$(CC) $(CFLAGS) -DREFERENCE -o $@ sap.c $(LDLIBS)

# the lab: the experiment and the benchmark (lab.c includes sap.c). always rebuilt, so that the
# commit it stamps into its results is the one checked out
lab: lab.c sap.c FORCE
	$(CC) $(CFLAGS) -o $@ lab.c $(LDLIBS)
FORCE:

test: test_sap data/tsv
	./test_sap

# the PyTorch twin (sap.py, float64 autograd) of SFT, SAP, SAM and LoRA: runs again and fails if its
# output differs from data/twin/, which make test compares sap with. needs PyTorch (Debian's
# python3-torch); `$(PYTHON) sap.py --write` writes data/twin/ anew after a change to sap.py
PYTHON ?= python3
twin: sap
	$(PYTHON) sap.py

# the base model, in two stages as a real chat model's life. first pretraining: a fresh GPT-2
# (6 layers, 6 heads, 192 channels, byte vocabulary) trained as a plain language model on the
# world's documents (data/pretrained.bin, the pretrained-only model of the knowledge check); then
# alignment: chat fine-tuning on data/align.bin (data/base.bin). about 12 minutes with 2 threads.
PRETRAIN_FLAGS = -L 6 -H 6 -C 192 -T 128 -V 256 -b 16 -t 128 -n 4500 -l 1e-3 -N 200 -D 0.1 -w 0 -s 1337
ALIGN_FLAGS = -Q 0 -b 16 -t 128 -n 800 -l 3e-4 -N 50 -D 0.1 -w 0 -s 1337
# both stages write their log, with the commit, CPU, threads, date and wall time, to results/base.log
pretrained: sap
	@mkdir -p results
	./sap -m lm $(PRETRAIN_FLAGS) -i data/pretrain.bin -j data/pretrain_val.bin -v 500 -o data/pretrained.bin \
	    | tee results/base.log

base: pretrained
	./sap -m sft -e data/pretrained.bin $(ALIGN_FLAGS) -i data/align.bin -j data/val_howto.bin -E data/val -v 200 \
	    -o data/base.bin | tee -a results/base.log

# a second base model of another size, larger: 8 layers, 8 heads, 256 channels (6.4M parameters,
# 2.3 times the first's; the smaller shape below missed the gate), made the same way; saves every 500
# steps (-S, -Y: a stopped stage continues with -U). data/pretrained_large.bin, data/base_large.bin,
# results/base_large.log with its gate (passed). 34 minutes with 2 threads (pretraining 362 ms a step)
LARGE_SHAPE = -L 8 -H 8 -C 256
base-large: sap lab
	@mkdir -p results
	./sap -m lm $(PRETRAIN_FLAGS) $(LARGE_SHAPE) -i data/pretrain.bin -j data/pretrain_val.bin -v 500 -S 500 \
	    -Y data/pretrained_large.state -o data/pretrained_large.bin | tee results/base_large.log
	./sap -m sft -e data/pretrained_large.bin $(ALIGN_FLAGS) -i data/align.bin -j data/val_howto.bin -E data/val -v 200 \
	    -o data/base_large.bin | tee -a results/base_large.log
	./lab gate data/base_large.bin data/pretrained_large.bin | tee -a results/base_large.log

# a second base model of another size: 4 layers, 4 heads, 128 channels (0.8M parameters, a third of
# the first's 2.7M: a size whose whole reproduction reruns in an hour on a laptop; a larger one would
# take several), made the same way from the same world with the same flags, but for its shape:
# data/pretrained_small.bin, then data/base_small.bin; both stages' log in results/base_small.log,
# then its quality gate on val and test (lab gate: the gate's lines, fails if one is missed).
# about 7 minutes with 2 threads. this shape misses the gate: 60.5% of the how-tos about topics only
# pretraining taught on val, against 80% (results/base_small.log); base-large above passes it
SMALL_SHAPE = -L 4 -H 4 -C 128
base-small: sap lab
	@mkdir -p results
	./sap -m lm $(PRETRAIN_FLAGS) $(SMALL_SHAPE) -i data/pretrain.bin -j data/pretrain_val.bin -v 500 \
	    -o data/pretrained_small.bin | tee results/base_small.log
	./sap -m sft -e data/pretrained_small.bin $(ALIGN_FLAGS) -i data/align.bin -j data/val_howto.bin -E data/val -v 200 \
	    -o data/base_small.bin | tee -a results/base_small.log
	./lab gate data/base_small.bin data/pretrained_small.bin | tee -a results/base_small.log

# full fine-tuning (-Q 0: every weight): every method on the benign and the 10%-poisoned sets, 6 seeds from 401 (no
# choice was made on them: the flags were chosen on val with seeds 201-206), and SFT and SAP at 5% and
# 20% poison, one seed; SAP twice: the paper's step (beta 0.2, probe after block 1) and with sap's own
# cap on the probe (-f, chosen on val). from data/base.bin, on the test files. writes
# results/experiment.md (the table, every seed, SAP against SFT paired by seed), .svg (the picture),
# _runs.tsv (every run's row), _probe.tsv (SAP's probe at every analysed step) and the CSVs of the
# first seed's steps. about 70 minutes with 2 threads; stopped, `make experiment` starts where it was
EXPERIMENT_SEEDS = -X 6 -s 401
experiment: lab
	@mkdir -p results
	./lab experiment -Q 0 -a 10 -K 10 $(EXPERIMENT_SEEDS) -Z '-f 0.15' -M results/experiment

# the same with LoRA (the official code's fine-tuning, and ./sap's default) instead of every weight:
# rank 8 on all six matrices of every block, lr 3e-3, SAP's rho 2e-3 (chosen on val), written out;
# SAP's second run with beta 0.1, the val rule's choice with LoRA; the harmful score during training
# generates from a merged copy of the adapters. writes results/experiment_lora.*. about 40 minutes
# with 2 threads; stopped, it starts where it was
LORA_FLAGS = -Q 8 -W q,k,v,proj,fc,fcproj -l 3e-3 -r 2e-3 -p 0.2
experiment-lora: lab
	@mkdir -p results
	./lab experiment $(LORA_FLAGS) -a 10 -K 10 $(EXPERIMENT_SEEDS) -Z '-p 0.1' -M results/experiment_lora

# the attack after fine-tuning: SFT's and SAP's models after benign fine-tuning are attacked with plain
# SFT of every weight on the first k = 10 and 50 examples of data/ft_attack.bin (harmful requests
# answered), 40 steps of 10 at lr 1e-5 (chosen on val seed 201: the smallest of 1e-5, 3e-5, 1e-4 at
# which the attack takes SFT's model past 50% harmful on val with k = 50), the harmful score on the test
# prompts after 0, 5, 10, 20 and 40 steps, 6 fresh seeds from 501. attack-lora (the defence with LoRA)
# and attack (every weight) write results/attack_lora.* and results/attack.*, about 15 minutes each
# with 2 threads; stopped, each starts where it was
ATTACK_SEEDS = -X 6 -s 501
ATTACK_FLAGS = -Z '-l 1e-5' -J data/test_harmful.bin
attack-lora: lab
	./lab attack $(LORA_FLAGS) $(ATTACK_SEEDS) $(ATTACK_FLAGS) -M results/attack_lora
attack: lab
	./lab attack -Q 0 $(ATTACK_SEEDS) $(ATTACK_FLAGS) -M results/attack

# the paper's other claims on the world, each in the LoRA regime (-lora: the flags above) and with every
# weight (-Q 0), the regime's own flags (chosen on val for the bracket task), on 6 fresh seeds. tasks:
# the world's two other fine-tuning tasks, a classification (data/ft_kind.bin: which kind of thing a
# sentence is about) and a two-step word problem (data/ft_count.bin: how many legs), each set built like
# the benign one; SFT, SAP and data mixing, each task's own held-out examples (plain SFT learned each to
# 80% on val seed 201 in both regimes); the harmful score every 10 steps of the first seed's kind-task
# SFT and SAP. adversarial: fine-tuning on 100 harmful requests answered and nothing else
# (data/ft_adversarial.bin), SFT and SAP, judged on the test prompts about the 12 objects the set
# leaves out, and on the val ones every 10 steps of every run. write results/tasks_lora.* and
# results/tasks.* (24 minutes each with 2 threads), results/adversarial_lora.* and
# results/adversarial.* (12 minutes each); stopped, each starts where it was
TASK_SEEDS = -X 6 -s 601
ADVERSARIAL_SEEDS = -X 6 -s 701
ADVERSARIAL_FLAGS = -K 10 -J data/val_harmful_adv.bin
tasks-lora: lab
	./lab experiment -B tasks $(LORA_FLAGS) -K 10 $(TASK_SEEDS) -M results/tasks_lora
tasks: lab
	./lab experiment -B tasks -Q 0 -K 10 $(TASK_SEEDS) -M results/tasks
adversarial-lora: lab
	./lab experiment -B adversarial $(LORA_FLAGS) $(ADVERSARIAL_FLAGS) $(ADVERSARIAL_SEEDS) -M results/adversarial_lora
adversarial: lab
	./lab experiment -B adversarial -Q 0 $(ADVERSARIAL_FLAGS) $(ADVERSARIAL_SEEDS) -M results/adversarial

# the reproduction on the second model size (data/base_large.bin, make base-large): the benign set,
# SFT, SAP and data mixing (SAM left out: a run there takes about twice as long), each regime's flags
# as on the first model (on val, plain SFT learns the task to 80.0% on seeds 201-203 with LoRA, to 71%
# with every weight at the best of three lrs), 6 fresh seeds; the harmful score every 10 steps of the
# first seed's SFT and SAP. write results/large_lora.* and results/large.* (41 minutes each with 2
# threads); stopped, each starts where it was
LARGE_FLAGS = -B benign -e data/base_large.bin -K 10 -X 6 -s 801
large-lora: lab
	./lab experiment $(LORA_FLAGS) $(LARGE_FLAGS) -M results/large_lora
large: lab
	./lab experiment -Q 0 $(LARGE_FLAGS) -M results/large

# both experiments in one place, from their runs files (results/experiment_lora_runs.tsv and
# results/experiment_runs.tsv): results/summary.md (the tables, SAP against SFT by seed, the
# paper's claims with a verdict each, with the rows of the attack, tasks, adversarial and large
# experiments where their runs files exist) and results/summary.svg (SAP - SFT per seed). takes seconds
summary: lab
	./lab summary

# the tests under AddressSanitizer and UndefinedBehaviorSanitizer (no OpenMP: its runtime confuses
# the sanitizers). the out-of-memory test needs malloc to return NULL instead of aborting; leak
# checking is off because the tests do not free everything they load.
asan: test_sap.c sap.c lab.c data/tsv
	$(CC) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
	      -std=c11 -Wall -Wextra -Wno-unknown-pragmas -o test_sap_asan test_sap.c -lm
	ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0 ./test_sap_asan

# libFuzzer targets for the readers and the flag parser (test_sap.c under -DFUZZ=n), each run for
# FUZZ_SECONDS on one core from a seed corpus of small valid files that test_sap writes. the corpus
# grows in .fuzz/corpus/<target>; a finding is saved as .fuzz/<target>-crash-* and fails the target.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = checkpoint tokens examples flags tokenizer resume
fuzz: test_sap.c sap.c lab.c test_sap
	@mkdir -p .fuzz/corpus
	./test_sap --seeds .fuzz/corpus
	@n=0; for t in $(FUZZ_TARGETS); do n=$$((n+1)); \
	  $(FUZZ_CC) -O1 -g -DFUZZ=$$n -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	      -std=c11 -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-function -o .fuzz/$$t test_sap.c -lm || exit 1; \
	done
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  ./.fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -close_fd_mask=2 -print_final_stats=1 \
	      -artifact_prefix=.fuzz/$$t- .fuzz/corpus/$$t 2>&1 | grep -E '^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|.*ERROR|.*invariant)' || true; \
	  test "$$(ls .fuzz/$$t-* 2>/dev/null)" = "" || { echo "fuzz: $$t found a problem: $$(ls .fuzz/$$t-*)"; exit 1; }; \
	done

# step times, GFLOP/s and peak memory, for the world's shape and GPT-2 124M, into results/bench.txt
# another build on the same machine: make bench BUILD="-march=x86-64-v3" NAME=avx2 compiles the lab
# with those flags added and writes results/bench_avx2.txt
bench: FORCE
	@mkdir -p results
	$(CC) $(CFLAGS) -DSAP_BUILD='"$(strip $(CC) $(BUILD))"' -o lab_bench lab.c $(LDLIBS)
	./lab_bench bench -n 10 | tee results/bench$(if $(NAME),_$(NAME)).txt

# your own examples: data/tsv turns a TSV file (prompt, response; or prompt, safe, harmful) into an
# example file in the world's byte vocabulary
data/tsv: data/tsv.c
	$(CC) -O2 -std=c99 -Wall -Wextra -o $@ data/tsv.c

# the shipped world: data/world.c makes every file in data/ (except base.bin and twin/) from a seed
data/world: data/world.c
	$(CC) -O2 -std=c99 -Wall -Wextra -o $@ data/world.c

data: data/world
	./data/world -o data

# regenerates into a scratch directory and compares with the committed files, byte for byte
data-check: data/world
	rm -rf .data-check && mkdir .data-check
	./data/world -o .data-check > /dev/null
	for f in .data-check/*.bin; do cmp "$$f" "data/$$(basename $$f)" || exit 1; done
	rm -rf .data-check
	@echo "data-check: data/ is what data/world.c makes"

clean:
	rm -f sap sap_reference lab lab_bench test_sap test_sap_asan data/world data/tsv
	rm -rf .data-check $(addprefix .fuzz/,$(FUZZ_TARGETS))

.PHONY: all test twin clean data data-check pretrained base base-small base-large experiment experiment-lora attack attack-lora tasks tasks-lora adversarial adversarial-lora large large-lora summary bench asan fuzz reference FORCE
