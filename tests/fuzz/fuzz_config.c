/*
 * fuzz_config.c - libFuzzer harness for the configuration: any bytes as the
 * dotenv file (CONVUTELL_ENV_FILE) give a configuration or a one-line reason.
 */
#include "cv_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The settings come from the file alone: none from the environment. */
static void forget_settings(void) {
    for (size_t i = 0; environ[i];) {
        char name[256];
        size_t n = strcspn(environ[i], "=");
        if ((strncmp(environ[i], "CONVUTELL_", 10) == 0 ||
             strncmp(environ[i], "MONGODB_", 8) == 0) &&
            n < sizeof(name)) {
            memcpy(name, environ[i], n);
            name[n] = '\0';
            unsetenv(name);
            i = 0;
            continue;
        }
        i++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    char err[1024] = "";
    cv_config cfg;
    FILE *f;

    if (!path[0]) {
        int fd;
        snprintf(path, sizeof(path), "/tmp/fuzz-config-XXXXXX");
        if ((fd = mkstemp(path)) < 0)
            abort();
        close(fd);
        forget_settings();
    }
    if (!(f = fopen(path, "wb")))
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    setenv("CONVUTELL_ENV_FILE", path, 1);
    if (cv_config_load(&cfg, err, sizeof(err)) != CV_OK) {
        if (!err[0] || strchr(err, '\n'))
            abort(); /* a refusal says why, on one line */
    } else if (cfg.http_port < 1 || cfg.http_port > 65535 || !cfg.kafka_bootstrap[0]) {
        abort();
    }
    return 0;
}
