/* libFuzzer target: libvirt domain XML read back into an ocvm config (launcher/libvirt_import.c),
 * the XML that `ocvm libvirt import` takes from a domain anyone with virsh may have edited.
 * Input: the XML. Checks: success gives NUL-terminated JSON text of one object for the config
 * loader and a note count that matches the notes; failure gives one error line and nothing
 * else. */
#include "launcher/libvirt_import.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256u << 10)
        return 0;
    struct libvirt_import im;
    char *error = NULL;
    int r = libvirt_import_xml((const char *)data, size, &im, &error);
    if (r < 0) {
        if (im.json || im.notes || im.n_notes)
            abort(); /* a failure hands nothing out */
        if (r != -ENOMEM && (!error || strchr(error, '\n')))
            abort(); /* and says why in one line */
        free(error);
        return 0;
    }
    if (error || !im.json)
        abort();
    json_error_t jerr;
    json_t *o = json_loads(im.json, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o))
        abort(); /* the config loader would be handed something that is not a config */
    json_decref(o);
    for (size_t i = 0; i < im.n_notes; i++)
        if (!im.notes[i] || strchr(im.notes[i], '\n'))
            abort();
    if (im.n_notes && im.notes[im.n_notes])
        abort(); /* NULL-terminated */
    libvirt_import_done(&im);
    return 0;
}
