# hcmd — one GNU Makefile for the agent (hcmd), the relay (hcrelay) and tests.
#
#   make                 build build/hcmd and build/hcrelay
#   make DEV=1           the same with -Werror (CI and `make test` use it)
#   make asan            ASan+UBSan build in build/asan/
#   make test            deps check, warning-free build, every test, then the
#                        whole suite again under ASan+UBSan
#   make unit            cmocka unit tests only
#   make demo            the whole chain on localhost, redis-cli by name
#   make bench           the benchmark table (BENCH_ARGS=--quick: < 2 min)
#   make soak            30 minutes of mixed load (SOAK_SECONDS=1800)
#   make fuzz            libFuzzer on every parser (FUZZ_SECONDS each)
#   make lint            clang-format --dry-run over our C files
#   make clean

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wpointer-arith -Wformat=2 -Wwrite-strings -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c99 -D_GNU_SOURCE -Iinclude $(WARN) $(EXTRA_CFLAGS)
ifeq ($(DEV),1)
CFLAGS  += -Werror
endif
LDLIBS  = -luv -lmbedtls -lmbedx509 -lmbedcrypto -lwslay -linih -ljansson
TESTLIBS = -lcmocka

LIB_SRC  := $(filter-out src/hcmd.c src/hcrelay.c,$(wildcard src/*.c))
LIB_OBJ  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRC))
HEADERS  := $(wildcard include/*.h src/*.h)

.PHONY: all asan test unit demo lint clean install deps bench fuzz fuzz-bin soak
all: $(BUILD)/hcmd $(BUILD)/hcrelay

$(BUILD)/obj/%.o: src/%.c $(HEADERS) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libhc.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/hcmd: $(BUILD)/obj/hcmd.o $(BUILD)/libhc.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/hcrelay: $(BUILD)/obj/hcrelay.o $(BUILD)/libhc.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/test/%: test/unit/%.c $(BUILD)/libhc.a $(HEADERS) | $(BUILD)/test
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libhc.a $(LDFLAGS) $(LDLIBS) $(TESTLIBS)

$(BUILD)/obj $(BUILD)/test:
	mkdir -p $@

# The test network emulator (two TUN devices, delay and loss in between).
$(BUILD)/test/tunem: test/netem/tunem.c | $(BUILD)/test
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

unit-bin: $(UNIT_BIN) $(BUILD)/test/tunem

# The sanitizer build lives in its own tree so both can coexist.
asan:
	$(MAKE) BUILD=build/asan DEV=$(DEV) \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" all unit-bin

unit: all unit-bin
	test/run.sh --unit-only $(BUILD)

test:
	$(MAKE) lint
	$(MAKE) DEV=1 all unit-bin
	$(MAKE) DEV=1 asan
	test/run.sh build build/asan

demo: all
	scripts/demo.sh $(BUILD)

# The long soak: SOAK_SECONDS of mixed load through the whole chain
# (make test runs a 5-minute one under ASan).
SOAK_SECONDS ?= 1800
soak: all
	cd test/interop && HCRELAY=$(CURDIR)/$(BUILD)/hcrelay HCMD=$(CURDIR)/$(BUILD)/hcmd \
	    SOAK_SECONDS=$(SOAK_SECONDS) node --test --test-reporter=tap ../soak/soak.test.js

# The benchmark table (test/bench/README-bench.md); --quick: under 2 min.
bench: all
	test/bench/run.sh --build $(BUILD) $(BENCH_ARGS)

lint:
	clang-format --dry-run --Werror src/*.c src/*.h include/*.h test/unit/*.c \
	    test/fuzz/*.c test/fuzz/*.h test/netem/*.c
	mandoc -Tlint -Wwarning man/*.5 man/*.8

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/hcmd \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BUILD)/hcmd $(BUILD)/hcrelay $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 conf/hcm.ini conf/relay.ini $(DESTDIR)$(PREFIX)/share/hcmd/
	install -m 0644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	for u in hcmd hcrelay; do \
	    sed 's|^ExecStart=/usr/local/bin/|ExecStart=$(PREFIX)/bin/|' \
	        scripts/$$u.service >$(BUILD)/$$u.service || exit 1; \
	done
	install -m 0644 $(BUILD)/hcmd.service $(BUILD)/hcrelay.service \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system/

# Fuzzing: clang + libFuzzer + ASan/UBSan over our parsers (test/fuzz/).
# The test suite replays the committed corpus without libFuzzer.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS   = -std=c99 -D_GNU_SOURCE -Iinclude $(WARN) -g -O1 \
                -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_OBJ     := $(patsubst src/%.c,build/fuzz/obj/%.o,$(LIB_SRC))
FUZZ_BIN     := $(patsubst test/fuzz/%.c,build/fuzz/%,$(wildcard test/fuzz/fuzz_*.c))

build/fuzz/obj/%.o: src/%.c $(HEADERS) | build/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/libhc.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/*.h build/fuzz/libhc.a $(HEADERS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libhc.a $(LDLIBS)

build/fuzz/obj:
	mkdir -p $@

fuzz-bin: $(FUZZ_BIN)

fuzz: fuzz-bin
	test/fuzz/run.sh --seconds $(FUZZ_SECONDS) build/fuzz

clean:
	rm -rf build
