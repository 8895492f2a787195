# sgprobe — a plain Makefile. Dependencies come from pkg-config; missing Debian
# packages are installed by scripts/deps.sh (run by `make deps`, which `test`,
# `demo` and `bench` depend on).
#
#   make                 build the release binaries into build/
#   make SANITIZER=address,undefined   build with sanitizers into build-san/
#   make test            the whole suite (sanitized build), ends with "N passed, N failed"
#   make demo            the AFIRGen lab in network namespaces, and the matrix
#   make bench           the benchmarks of bench/ (figures in docs/benchmarks.md)

PKG_CONFIG ?= pkg-config
CC ?= cc
SANITIZER ?=
PKGS := libuv libcjson libcurl openssl libh2o zlib

ifeq ($(SANITIZER),)
BUILD ?= build
SANFLAGS :=
OPT ?= -O2
else
BUILD ?= build-san
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT ?= -O1
endif

# pkg-config is only asked when its answer is needed, so that `make deps` and
# `make clean` work on a machine that has none of the libraries yet.
DEP_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS))
DEP_LIBS = $(shell $(PKG_CONFIG) --libs libuv libcjson libcurl openssl zlib)
# The agent loads libcurl when it first needs it (agent/curlload.h says why).
AGENT_LIBS = $(shell $(PKG_CONFIG) --libs libuv libcjson openssl zlib)
H2O_LIBS = $(shell $(PKG_CONFIG) --libs libh2o)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka)

CFLAGS ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Iinclude $(DEP_CFLAGS) $(SANFLAGS) $(CFLAGS)
ALL_LDFLAGS = -Wl,--as-needed $(SANFLAGS) $(LDFLAGS)

LIB_SRC := $(wildcard lib/*.c)
AGENT_SRC := $(wildcard agent/*.c)
COLLECTOR_SRC := $(wildcard collector/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
AGENT_OBJ := $(AGENT_SRC:%.c=$(BUILD)/%.o)
AGENT_LIB_OBJ := $(filter-out $(BUILD)/agent/main.o $(BUILD)/agent/curlload.o,$(AGENT_OBJ))
COLLECTOR_OBJ := $(COLLECTOR_SRC:%.c=$(BUILD)/%.o)
COLLECTOR_LIB_OBJ := $(filter-out $(BUILD)/collector/main.o,$(COLLECTOR_OBJ)) \
	$(if $(wildcard collector/dashboard.html),$(BUILD)/gen/dashboard_html.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test demo bench fuzz clean format check-format
COLLECTOR_BIN := $(if $(wildcard collector/main.c),$(BUILD)/sgprobe-collector)
all: $(BUILD)/sgprobe-agent $(COLLECTOR_BIN) $(BUILD)/labd $(UNIT_BIN)

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c $(wildcard include/sgprobe/*.h agent/*.h collector/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libsgprobe.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libagent.a: $(AGENT_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The dashboard page, embedded in the binary.
$(BUILD)/gen/dashboard_html.c: collector/dashboard.html scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh dashboard_html $< > $@

$(BUILD)/gen/dashboard_html.o: $(BUILD)/gen/dashboard_html.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libcollector.a: $(COLLECTOR_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/sgprobe-agent: $(BUILD)/agent/main.o $(BUILD)/agent/curlload.o $(BUILD)/libagent.a \
		$(BUILD)/libsgprobe.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(AGENT_LIBS)

$(BUILD)/sgprobe-collector: $(BUILD)/collector/main.o $(BUILD)/libcollector.a $(BUILD)/libsgprobe.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(H2O_LIBS) $(DEP_LIBS)

$(BUILD)/labd: tests/lab/labd.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(shell $(PKG_CONFIG) --libs openssl)

# The ingest benchmark's load generator: built for `make bench`, not by `all`.
$(BUILD)/loadgen: bench/loadgen.c $(BUILD)/libsgprobe.a $(wildcard include/sgprobe/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libsgprobe.a $(DEP_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcollector.a $(BUILD)/libagent.a $(BUILD)/libsgprobe.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(H2O_LIBS) $(DEP_LIBS) $(CMOCKA_LIBS)

# These tests reach libcurl the agent's way, through agent/curlload.c.
CURLLOAD_TESTS := $(BUILD)/tests/test_curlload $(BUILD)/tests/test_curluv
$(CURLLOAD_TESTS): $(BUILD)/tests/%: tests/unit/%.c $(BUILD)/agent/curlload.o $(BUILD)/libagent.a \
		$(BUILD)/libsgprobe.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(AGENT_LIBS) $(CMOCKA_LIBS)

# The suite runs against the sanitized build: every test also checks memory safety.
test: deps
	@$(MAKE) -s --no-print-directory all
	@$(MAKE) -s --no-print-directory SANITIZER=address,undefined all
	@sh tests/run.sh build-san

demo: deps
	@$(MAKE) -s --no-print-directory all
	@bash tests/lab/demo.sh build

bench: deps $(BUILD)/loadgen
	@$(MAKE) -s --no-print-directory all
	@sh bench/run.sh build

# libFuzzer targets of the parsers (tests/fuzz/); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

format:
	clang-format -i $(LIB_SRC) $(AGENT_SRC) $(COLLECTOR_SRC) $(UNIT_SRC) include/sgprobe/*.h agent/*.h $(wildcard collector/*.h tests/unit/*.h tests/fuzz/*.c bench/*.c) tests/lab/labd.c

check-format:
	@clang-format --dry-run -Werror $(LIB_SRC) $(AGENT_SRC) $(COLLECTOR_SRC) $(UNIT_SRC) include/sgprobe/*.h agent/*.h $(wildcard collector/*.h tests/unit/*.h tests/fuzz/*.c bench/*.c) tests/lab/labd.c

clean:
	rm -rf build build-san build-fuzz tests/out
