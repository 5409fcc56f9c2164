/* libFuzzer target: one VM's JSON config through everything `ocvm up` does with it before
 * anything starts: the strict loader (config/config.c, common/json_reader.c, vsock/endpoint.c),
 * the safety rules (policy/rules.c), OpenClaw's config merged from gateway.openclaw
 * (policy/gateway_config.c), and the canonical text (config/config_json.c). The text is loaded as
 * if it were tests/configs/pass/fuzz.json, so "../vmlinuz.stub" names a real file. Checks: a
 * refusal is one line naming the file; an accepted config's canonical text loads again into
 * the same canonical text (config_json.h: equal texts, the same VM). */
#include "config/config.h"
#include "config/config_json.h"
#include "policy/gateway_config.h"
#include "policy/rules.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_PATH SOURCE_DIR "/tests/configs/pass/fuzz.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(int r, char *error)
{
    if (r == -ENOMEM)
        return;
    if (!error || strchr(error, '\n'))
        abort(); /* one line */
    if (r == -EINVAL && strncmp(error, CONFIG_PATH ":", strlen(CONFIG_PATH ":")) != 0)
        abort(); /* FILE:LINE:COL: message */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64u << 10)
        return 0;
    struct vm_config *c = NULL;
    char *error = NULL;
    int r = config_load_text(CONFIG_PATH, (const char *)data, size, &c, &error);
    if (r < 0) {
        check_error(r, error);
        free(error);
        return 0;
    }

    struct policy_report report;
    if (policy_check(c, &report) == 0) {
        for (size_t i = 0; i < report.n; i++)
            if (!report.findings[i].line || strchr(report.findings[i].line, '\n'))
                abort();
        policy_report_done(&report);
    }
    json_t *gw = NULL;
    char *gw_error = NULL;
    if (gateway_config_build(c, "0123456789abcdef0123456789abcdef", &gw, &gw_error) == 0)
        json_decref(gw);
    free(gw_error);

    char *text = NULL;
    if (config_json_text(c, &text) == 0) {
        struct vm_config *again = NULL;
        char *again_text = NULL;
        r = config_load_text(CONFIG_PATH, text, strlen(text), &again, &error);
        if (r == -ENOMEM) {
            free(error);
        } else if (r < 0) {
            fprintf(stderr, "canonical text refused: %s\n%s", error, text);
            abort();
        } else if (config_json_text(again, &again_text) == 0 && strcmp(text, again_text) != 0) {
            fprintf(stderr, "canonical text changed on reload:\n%s---\n%s", text, again_text);
            abort();
        }
        free(again_text);
        vm_config_free(again);
        free(text);
    }
    vm_config_free(c);
    return 0;
}
