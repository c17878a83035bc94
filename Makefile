# Convutell build. `make` builds build/convutell and its web interface
# (build/web); `make test` runs the unit and
# system tests with -Werror; `make asan` runs the unit tests under ASan+UBSan;
# `make run` brings up the local stack and every service with a demo project;
# `make install` (PREFIX, DESTDIR) installs it.

CC ?= cc
BUILD ?= build
PKGS := rdkafka libmongoc-1.0 libbson-1.0 odbc libcjson libmicrohttpd libcrypto libpq libmariadb libsodium libcurl
WARN := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wvla -Wwrite-strings -fno-common
CFLAGS ?= -O2 -g
CPPFLAGS += -D_DEFAULT_SOURCE -Ilib -Ischemas -Iruns -Ipeople -Iapi -Iconsumer -Iproducer $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
ALL_CFLAGS = $(WARN) $(CFLAGS) $(EXTRA_CFLAGS)

LIB_SRC := $(wildcard lib/*.c) $(wildcard schemas/*.c) $(wildcard runs/*.c) $(wildcard people/*.c)
SVC_SRC := $(wildcard api/*.c) $(wildcard consumer/*.c) $(wildcard producer/*.c)
MAIN_SRC := $(wildcard cmd/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

# Files built into the binary as bytes (scripts/embed): the OpenAPI document.
GEN_OBJ = $(BUILD)/gen/cv_openapi_doc.o
OBJ = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC) $(SVC_SRC)) $(GEN_OBJ)
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: FORCE install web all deps layers-check test unit unit-run system-run compose-check system asan fuzz fuzz-run test-faults faults-run run stack-up stack-down bench style style-check clean

all: $(BUILD)/convutell $(BUILD)/web/index.html

# The web interface (web/): its npm packages from web/package-lock.json into
# web/node_modules (npm's cache in .cache/npm), bundled by esbuild into
# $(BUILD)/web, beside the binary, where the API finds it (api/cv_web.h).
WEB_SRC := $(shell find web/src -type f 2>/dev/null) web/build.mjs
NPM_CACHE := $(or $(CV_CACHE_DIR),$(CURDIR)/.cache)/npm

web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	cd web && npm ci --cache "$(NPM_CACHE)" --no-audit --no-fund --loglevel=error
	@touch $@

$(BUILD)/web/index.html: $(WEB_SRC) web/node_modules/.package-lock.json
	node web/build.mjs $(BUILD)/web

web: $(BUILD)/web/index.html

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/cv_openapi_doc.c: api/openapi.json scripts/embed
	@mkdir -p $(dir $@)
	scripts/embed cv_openapi_json $< > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The version and the revision built from, for `convutell version` and the
# services' first log line; rewritten only when they change.
VERSION := 0.1.0
$(BUILD)/gen/cv_version.h: FORCE
	@mkdir -p $(dir $@)
	@rev=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown); \
	 git diff --quiet HEAD 2>/dev/null || rev="$$rev-dirty"; \
	 printf '#define CV_VERSION "%s"\n#define CV_REVISION "%s"\n' "$(VERSION)" "$$rev" > $@.tmp; \
	 cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/cmd/convutell.o: $(BUILD)/gen/cv_version.h
$(BUILD)/cmd/convutell.o: CPPFLAGS += -include $(BUILD)/gen/cv_version.h

FORCE:

$(BUILD)/convutell: $(patsubst %.c,$(BUILD)/%.o,$(MAIN_SRC)) $(OBJ)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each unit test binary links only the objects it needs: scripts/unit-objs
# follows the test's includes to the modules behind them and writes their
# objects as its prerequisites.
$(BUILD)/unit-objs.mk: $(UNIT_SRC) $(LIB_SRC) $(SVC_SRC) $(wildcard */*.h) scripts/unit-objs
	@mkdir -p $(dir $@)
	@scripts/unit-objs $(BUILD) $(UNIT_SRC) > $@

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

-include $(BUILD)/unit-objs.mk

deps:
	@scripts/deps

# The test build is separate so that -Werror never mixes with a developer's objects.
test: deps
	$(MAKE) --no-print-directory BUILD=build/test EXTRA_CFLAGS=-Werror layers-check style-check unit-run compose-check system-run

# Each folder is a layer (lib, schemas, runs, the services, cmd): a file may
# include headers of its own folder and of the layers below only.
layers-check:
	@scripts/layers-check

unit: deps
	$(MAKE) --no-print-directory BUILD=build/test EXTRA_CFLAGS=-Werror unit-run

system: deps
	$(MAKE) --no-print-directory BUILD=build/test EXTRA_CFLAGS=-Werror system-run

unit-run: $(UNIT_BIN)
	@scripts/run-unit $(UNIT_BIN)

# No Docker engine runs on the build machines: the compose files are checked with
# the Compose specification's loader instead (compose/validate).
compose-check:
	.cache/bin/compose-validate compose/docker-compose.yml

system-run: $(BUILD)/convutell $(BUILD)/web/index.html
	CONVUTELL_BIN=$(abspath $(BUILD)/convutell) scripts/run-system -m "not faults"

# The whole suite under AddressSanitizer + UBSan: unit tests with leak checks, then
# the system tests against sanitized services (leak checks off there: the Kafka and
# MongoDB clients keep process-lifetime allocations).
asan: deps
	$(MAKE) --no-print-directory BUILD=build/asan CC=clang \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address,undefined" EXTRA_CFLAGS=-Werror unit-run
	ASAN_OPTIONS=detect_leaks=0 $(MAKE) --no-print-directory BUILD=build/asan CC=clang \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address,undefined" EXTRA_CFLAGS=-Werror system-run

# libFuzzer harnesses (tests/fuzz) for the parsers that read what other
# systems send: each runs FUZZ_SECONDS from its committed seed corpus
# (tests/fuzz/corpus/<name>, copied so that the committed one stays small);
# a crash leaves its input in build/fuzz and fails the run.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_SECONDS ?= 300
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

fuzz: deps
	$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang \
	    CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" EXTRA_CFLAGS=-Werror fuzz-run

fuzz-run: $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
	@scripts/run-fuzz $(FUZZ_SECONDS) $^

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# The fault tests: each fuzzing harness for a minute.
test-faults: deps
	$(MAKE) --no-print-directory FUZZ_SECONDS=60 fuzz
	$(MAKE) --no-print-directory BUILD=build/test EXTRA_CFLAGS=-Werror faults-run

faults-run: $(BUILD)/convutell $(BUILD)/web/index.html
	CONVUTELL_BIN=$(abspath $(BUILD)/convutell) scripts/run-system -m faults

# What `make install` puts where (README.md, Installing): the binary, the web
# interface beside it (../share/convutell/web, where the API looks), the man
# page, bash completion, systemd units and the Supervisor programs, with the
# paths below written into them, and an example of the settings file.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
LOGDIR ?= /var/log/convutell
SERVICE_USER ?= convutell
RENDER = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' \
    -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@SYSTEMDDIR@|$(SYSTEMDDIR)|g' \
    -e 's|@LOGDIR@|$(LOGDIR)|g' -e 's|@USER@|$(SERVICE_USER)|g' -e 's|@VERSION@|$(VERSION)|g'
UNITS := $(notdir $(wildcard compose/systemd/*))

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(COMPLETIONDIR) \
	    $(DESTDIR)$(SYSTEMDDIR) $(DESTDIR)$(DATADIR)/convutell/supervisor
	install -m 0755 $(BUILD)/convutell $(DESTDIR)$(BINDIR)/convutell
	rm -rf $(DESTDIR)$(DATADIR)/convutell/web
	cd $(BUILD)/web && find . -type f | while read -r f; do \
	    install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/convutell/web/$$f" || exit 1; done
	$(RENDER) cmd/convutell.1 > $(DESTDIR)$(MANDIR)/man1/convutell.1
	install -m 0644 cmd/convutell.bash $(DESTDIR)$(COMPLETIONDIR)/convutell
	for u in $(UNITS); do $(RENDER) compose/systemd/$$u > $(DESTDIR)$(SYSTEMDDIR)/$$u || exit 1; done
	$(RENDER) compose/supervisord.conf > $(DESTDIR)$(DATADIR)/convutell/supervisor/convutell.conf
	install -m 0644 compose/convutell.env.example $(DESTDIR)$(DATADIR)/convutell/convutell.env.example
	chmod 0644 $(DESTDIR)$(MANDIR)/man1/convutell.1 $(DESTDIR)$(DATADIR)/convutell/supervisor/convutell.conf \
	    $(addprefix $(DESTDIR)$(SYSTEMDDIR)/,$(UNITS))

run: deps all
	@scripts/run-demo $(abspath $(BUILD)/convutell)

stack-up: deps
	@scripts/stack up

stack-down:
	@scripts/stack down

bench: deps all
	@bench/run
	@bench/run --scheduler
	@bench/run --history
	@bench/run --throughput
	@bench/run --throughput --hosts 1,2,3 --workers 3 --jobs 10000
	@bench/run --auth
	@bench/run --console
	@bench/run --api

style:
	clang-format -i $(LIB_SRC) $(SVC_SRC) $(MAIN_SRC) $(wildcard */*.h) $(UNIT_SRC) $(FUZZ_SRC)

style-check:
	@clang-format --dry-run -Werror $(LIB_SRC) $(SVC_SRC) $(MAIN_SRC) $(wildcard */*.h) $(UNIT_SRC) $(FUZZ_SRC)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name image-root -prune -o -name '*.d' -type f -print 2>/dev/null)
.SECONDARY:
