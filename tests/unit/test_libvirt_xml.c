/* libvirt_xml and libvirt_import: the domain of each machine type is pinned by a golden file in
 * tests/golden/ (regenerate deliberately with UPDATE_GOLDEN=1); a config survives the way into
 * libvirt and back, through ocvm's metadata and through the XML alone; a domain changed in libvirt
 * brings its changes back; broken and foreign domains are refused or have every element left
 * behind reported; values are escaped for XML and for QEMU's option syntax. */
#include "common/cleanup.h"
#include "config/config.h"
#include "config/config_json.h"
#include "launcher/libvirt_import.h"
#include "launcher/libvirt_xml.h"
#include "launcher/secrets.h"

#include "tests/support/golden.h"
#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <check.h>
#include <errno.h>
#include <string.h>

static const struct libvirt_plan tcg_user = {.accel = ACCEL_TCG,
                                             .vsock = VSOCK_BACKEND_USER,
                                             .tsc_khz = 2096015,
                                             .emulator = "/usr/bin/qemu-system-x86_64",
                                             .socket_dir = "/run/ocvm-libvirt/vm",
                                             .console_log = "/var/log/libvirt/qemu/vm-console.log",
                                             .seclabel_user = "ocvm-vm"};

/* C's domain with plan P, ocvm's secrets share planned as define plans it. */
static char *export(struct vm_config *c, const struct libvirt_plan *p)
{
    ck_assert_int_eq(secrets_plan_share(c, "/run/ocvm/vm"), 0);
    _cleanup_free_ char *error = NULL;
    char *xml = NULL;
    int r = libvirt_xml_from_config(c, p, &xml, &error);
    ck_assert_msg(r == 0, "export: %s", error ? error : strerror(-r));
    return xml;
}

/* The fixture's stand-ins (vmlinuz, initrd.img, share) moved to DIR, where a user keeps them. */
static char *host_paths(char *xml, const char *dir)
{
    _cleanup_free_ char *fixture = NULL;
    ck_assert_int_ge(asprintf(&fixture, "%s/", vm_fixture_dir()), 0);
    return golden_replace(xml, fixture, dir);
}

static char *canonical(const struct vm_config *c)
{
    char *s = NULL;
    ck_assert_int_eq(config_json_text(c, &s), 0);
    return s;
}

/* XML imported, no error; its config loaded (the fixture's files exist) and returned canonical. */
static char *import(const char *xml, struct libvirt_import *im)
{
    _cleanup_free_ char *error = NULL;
    int r = libvirt_import_xml(xml, strlen(xml), im, &error);
    ck_assert_msg(r == 0, "import: %s", error ? error : strerror(-r));
    struct vm_config *c = vm_fixture_load_as(vm_fixture_config_path(), im->json);
    char *s = canonical(c);
    vm_config_free(c);
    return s;
}

static bool has_note(const struct libvirt_import *im, const char *part)
{
    for (size_t i = 0; i < im->n_notes; i++)
        if (strstr(im->notes[i], part))
            return true;
    return false;
}

static void assert_import_fails(const char *xml, int want, const char *part)
{
    struct libvirt_import im;
    _cleanup_free_ char *error = NULL;
    int r = libvirt_import_xml(xml, strlen(xml), &im, &error);
    ck_assert_int_eq(r, want);
    ck_assert_msg(error && strstr(error, part), "error \"%s\" lacks \"%s\"", error, part);
}

/* XML with its <metadata> element cut out: a domain as libvirt's tools would have it. */
static char *without_metadata(const char *xml)
{
    const char *a = strstr(xml, "<metadata>"), *b = strstr(xml, "</metadata>");
    ck_assert(a && b);
    char *s = NULL;
    ck_assert_int_ge(asprintf(&s, "%.*s%s", (int)(a - xml), xml, b + strlen("</metadata>")), 0);
    return s;
}

/* microvm, TCG, the user vsock backend, the secrets share: the demo. */
START_TEST(golden_demo_microvm)
{
    struct vm_config *c = vm_fixture_load_example("demo.json");
    struct libvirt_plan p = tcg_user;
    p.socket_dir = "/run/ocvm-libvirt/demo";
    p.console_log = "/var/log/libvirt/qemu/demo-console.log";
    p.seclabel_user = "ocvm-demo";
    _cleanup_free_ char *xml = host_paths(export(c, &p), "/var/lib/ocvm/demo/");
    golden_check("libvirt-demo.xml", xml);
    vm_config_free(c);
}
END_TEST

/* q35 under KVM with 4 vCPUs: PCI devices, a multi-queue TAP opened by name, the kernel vsock
 * backend as libvirt's own <vsock>, a 9p and a virtiofs share, extra arguments. */
static const char q35_json[] =
    "{\"name\": \"vm\", \"machine\": {\"type\": \"q35\", \"accel\": \"kvm\", \"vcpu\": 4,"
    " \"memory_mib\": 4096, \"extra_args\": [\"-msg\", \"timestamp=on\"]},"
    " \"boot\": {\"kernel\": \"KERNEL\", \"initrd\": \"TMP/initrd.img\"},"
    " \"vsock\": {\"backend\": \"kernel\", \"guest_cid\": 7},"
    " \"network\": {\"mac\": \"02:00:00:00:00:07\", \"tap\": \"vm-q35\"},"
    " \"shares\": [{\"tag\": \"data\", \"source\": \"TMP/share\", \"proto\": \"9p\","
    " \"read_only\": false}, {\"tag\": \"docs\", \"source\": \"TMP/share\"}]}";

START_TEST(golden_q35)
{
    struct vm_config *c = vm_fixture_load(q35_json);
    struct libvirt_plan p = tcg_user;
    p.accel = ACCEL_KVM;
    p.vsock = VSOCK_BACKEND_KERNEL;
    p.tsc_khz = 0;
    p.uuid = "3f6d2c4e-3b1e-4a57-9a51-0c1f0d9a3e21";
    _cleanup_free_ char *xml = host_paths(export(c, &p), "/var/lib/ocvm/vm/");
    golden_check("libvirt-q35.xml", xml);
    vm_config_free(c);
}
END_TEST

/* Through ocvm's metadata every key comes back, defaults, waivers and forwards included. */
START_TEST(round_trip_metadata)
{
    struct vm_config *c = vm_fixture_load_example("openclaw.json");
    _cleanup_free_ char *want = canonical(c), *xml = export(c, &tcg_user);
    struct libvirt_import im;
    _cleanup_free_ char *got = import(xml, &im);
    ck_assert(im.from_metadata);
    ck_assert_str_eq(got, want);
    ck_assert_msg(im.n_notes == 0, "unexpected note: %s", im.notes[0]);
    libvirt_import_done(&im);
    vm_config_free(c);
}
END_TEST

/* Without the metadata, what the domain holds is enough for a config that uses nothing else. */
START_TEST(round_trip_xml_alone)
{
    static const char *const configs[] = {
        q35_json,
        "{\"name\": \"vm\", \"machine\": {\"accel\": \"tcg\", \"vcpu\": 1, \"memory_mib\": 512},"
        " \"boot\": {\"kernel\": \"KERNEL\", \"cmdline\": \"console=ttyS0 quiet a=\\\"<&>\\\"\"},"
        " \"vsock\": {\"backend\": \"user\"}, \"gateway\": {\"guest_port\": 8080},"
        " \"network\": {\"bridge_address\": \"10.9.8.1/28\", \"guest_address\": \"10.9.8.5\","
        " \"dns\": \"10.9.8.1\"},"
        " \"shares\": [{\"tag\": \"ro9p\", \"source\": \"TMP/share\", \"proto\": \"9p\"}]}",
    };
    for (size_t i = 0; i < ELEMENTSOF(configs); i++) {
        struct vm_config *c = vm_fixture_load(configs[i]);
        /* the shares the XML alone cannot carry (virtiofs: ocvm's daemon, its source not in
         * the domain) are left out; the test below notes them */
        for (size_t j = 0; j < c->n_shares; j++)
            if (c->shares[j].proto == SHARE_VIRTIOFS) {
                free(c->shares[j].tag);
                free(c->shares[j].source);
                c->shares[j--] = c->shares[--c->n_shares];
            }
        struct libvirt_plan p = tcg_user;
        if (c->machine.accel == ACCEL_KVM)
            p.accel = ACCEL_KVM, p.vsock = VSOCK_BACKEND_KERNEL;
        _cleanup_free_ char *xml = export(c, &p), *bare = without_metadata(xml);
        free(c->machine.qemu); /* the domain's <emulator> is a path */
        c->machine.qemu = strdup(p.emulator);
        _cleanup_free_ char *want = canonical(c);
        struct libvirt_import im;
        _cleanup_free_ char *got = import(bare, &im);
        ck_assert(!im.from_metadata);
        ck_assert_str_eq(got, want);
        libvirt_import_done(&im);
        vm_config_free(c);
    }
}
END_TEST

/* What the XML cannot carry without the metadata is said, one note each. */
START_TEST(xml_alone_notes)
{
    struct vm_config *c = vm_fixture_load_example("openclaw.json");
    _cleanup_free_ char *xml = export(c, &tcg_user), *bare = without_metadata(xml);
    struct libvirt_import im;
    _cleanup_free_ char *error = NULL;
    ck_assert_int_eq(libvirt_import_xml(bare, strlen(bare), &im, &error), 0);
    ck_assert(has_note(&im, "a forward to guest port 9000"));
    ck_assert(has_note(&im, "a forward from guest port 18790"));
    ck_assert(has_note(&im, "virtiofs share \"secrets\""));
    ck_assert(has_note(&im, "CID is its backend's"));
    ck_assert(!has_note(&im, "ocvm-secrets")); /* ocvm's own share is not the user's */
    libvirt_import_done(&im);
    vm_config_free(c);
}
END_TEST

/* virsh edit after define: the domain's values win over the metadata, each noted. */
START_TEST(domain_changes_win)
{
    struct vm_config *c = vm_fixture_load_example("openclaw.json");
    _cleanup_free_ char *xml = export(c, &tcg_user);
    xml = golden_replace(xml, "<memory unit=\"MiB\">3072</memory>",
                         "<memory unit='KiB'>4194304</memory>");
    xml = golden_replace(xml, "<vcpu placement=\"static\">2</vcpu>", "<vcpu>3</vcpu>");
    xml = golden_replace(xml, "console=ttyS0 panic=-1 reboot=t", "console=ttyS0 panic=-1 debug");
    struct libvirt_import im;
    _cleanup_free_ char *got = import(xml, &im);
    ck_assert(strstr(got, "\"memory_mib\": 4096"));
    ck_assert(strstr(got, "\"vcpu\": 3"));
    ck_assert(strstr(got, "\"cmdline\": \"console=ttyS0 panic=-1 debug\""));
    ck_assert(strstr(got, "\"guest_port\": 9000")); /* the forwards stay, from the metadata */
    ck_assert(has_note(&im, "machine.memory_mib: 4096 in the domain, 3072 in ocvm's metadata"));
    ck_assert(has_note(&im, "machine.vcpu: 3 in the domain"));
    ck_assert(has_note(&im, "boot.cmdline:"));
    libvirt_import_done(&im);
    vm_config_free(c);
}
END_TEST

#define FOREIGN_HEAD "<domain type='kvm'><name>foreign</name><memory>1048576</memory><vcpu>2</vcpu>"
#define FOREIGN_OS "<os><type machine='pc-q35-7.2'>hvm</type><kernel>KERNEL</kernel></os>"

/* A domain made with virt-install: everything ocvm cannot carry is one note. */
START_TEST(foreign_domain_notes)
{
    _cleanup_free_ char *kernel = NULL;
    ck_assert_int_ge(asprintf(&kernel, "%s/vmlinuz", vm_fixture_dir()), 0);
    char *xml = golden_replace(strdup(FOREIGN_HEAD
                                      "<iothreads>1</iothreads>" FOREIGN_OS
                                      "<on_crash>destroy</on_crash><devices>"
                                      "<disk type='file' device='disk'><source file='/x.qcow2'/>"
                                      "<target dev='vda'/></disk><graphics type='vnc'/>"
                                      "<sound model='ich9'/><interface type='network'>"
                                      "<source network='default'/></interface>"
                                      "<vsock model='virtio'><cid auto='no' address='9'/></vsock>"
                                      "</devices></domain>"),
                               "KERNEL", kernel);
    struct libvirt_import im;
    _cleanup_free_ char *got = import(xml, &im);
    free(xml);
    static const char *const notes[] = {"<iothreads>",
                                        "<on_crash>: ocvm's is restart",
                                        "<devices><disk>: not carried over",
                                        "<devices><graphics>",
                                        "<devices><sound>",
                                        "<interface type='network'>"};
    for (size_t i = 0; i < ELEMENTSOF(notes); i++)
        ck_assert_msg(has_note(&im, notes[i]), "no note on %s", notes[i]);
    ck_assert_uint_eq(im.n_notes, ELEMENTSOF(notes));
    ck_assert(strstr(got, "\"guest_cid\": 9"));
    ck_assert(strstr(got, "\"memory_mib\": 1024"));
    ck_assert(strstr(got, "\"network\": null"));
    libvirt_import_done(&im);
}
END_TEST

/* A domain wired to a vhost-user vsock backend of its own (vhost-device-vsock): ocvm's backend
 * takes over, the chardev goes with the device, other arguments stay extra arguments. */
START_TEST(foreign_vhost_user_vsock)
{
    struct libvirt_import im;
    _cleanup_free_ char *error = NULL;
    static const char xml[] =
        FOREIGN_HEAD FOREIGN_OS "<qemu:commandline xmlns:qemu='" LIBVIRT_QEMU_NS "'>"
                                "<qemu:arg value='-chardev'/>"
                                "<qemu:arg value='socket,id=vv,path=/tmp/vhost4.socket'/>"
                                "<qemu:arg value='-msg'/><qemu:arg value='timestamp=on'/>"
                                "<qemu:arg value='-device'/>"
                                "<qemu:arg value='vhost-user-vsock-pci,chardev=vv'/>"
                                "<qemu:env name='A' value='b'/></qemu:commandline></domain>";
    ck_assert_int_eq(libvirt_import_xml(xml, strlen(xml), &im, &error), 0);
    ck_assert(strstr(im.json, "\"backend\": \"user\""));
    ck_assert(strstr(im.json, "\"extra_args\": [\n      \"-msg\",\n      \"timestamp=on\"\n    ]"));
    ck_assert(has_note(&im, "<qemu:commandline><qemu:env>: not carried over"));
    ck_assert(has_note(&im, "CID is its backend's"));
    libvirt_import_done(&im);
}
END_TEST

START_TEST(broken_domains)
{
    assert_import_fails(FOREIGN_HEAD "<os><type>hvm</type></os></domain>", -EINVAL,
                        "no <os><kernel>");
    assert_import_fails(FOREIGN_HEAD FOREIGN_OS "<devices><vsock model='virtio'/>"
                                                "<vsock model='virtio'/></devices></domain>",
                        -EINVAL, "2 vsock devices");
    assert_import_fails(FOREIGN_HEAD FOREIGN_OS
                        "<devices><vsock model='virtio'/></devices>"
                        "<qemu:commandline xmlns:qemu='" LIBVIRT_QEMU_NS "'>"
                        "<qemu:arg value='-device'/>"
                        "<qemu:arg value='vhost-user-vsock-device,chardev=c'/>"
                        "</qemu:commandline></domain>",
                        -EINVAL, "2 vsock devices");
    assert_import_fails("<domain><name>x</name>", -EINVAL, "domain XML:1:");
    assert_import_fails("<network><name>x</name></network>", -EINVAL, "the root is not <domain>");
    assert_import_fails("<!DOCTYPE domain [<!ENTITY a 'aaaa'>]><domain>&a;</domain>", -EINVAL,
                        "DOCTYPE");
    assert_import_fails(FOREIGN_HEAD FOREIGN_OS
                        "<metadata><ocvm:config xmlns:ocvm='" LIBVIRT_OCVM_NS
                        "'>[1]</ocvm:config></metadata></domain>",
                        -EINVAL, "not a JSON config object");
}
END_TEST

/* XML-special characters in values come back as they were; QEMU's commas are doubled. */
START_TEST(escaping)
{
    struct vm_config *c = vm_fixture_load(
        "{\"name\": \"vm\", \"machine\": {\"accel\": \"tcg\"}, \"boot\": {\"kernel\": \"KERNEL\","
        " \"cmdline\": \"console=ttyS0 x='<a&b>' y=\\\"]]>\\\"\"}, \"network\": null}");
    struct libvirt_plan p = tcg_user;
    p.socket_dir = "/run/a,b<c>";
    p.console_log = "/var/log/it's \"here\".log";
    _cleanup_free_ char *xml = export(c, &p);
    ck_assert(strstr(xml, "path=/run/a,,b&lt;c&gt;/vhost-user-vsock.sock"));
    ck_assert(strstr(xml, "x='&lt;a&amp;b&gt;' y=&quot;]]&gt;&quot;"));
    ck_assert(strstr(xml, "file=\"/var/log/it's &quot;here&quot;.log\""));
    struct libvirt_import im;
    _cleanup_free_ char *got = import(xml, &im), *want = canonical(c);
    ck_assert_str_eq(got, want);
    libvirt_import_done(&im);
    p.socket_dir = "/run/a\nb";
    _cleanup_free_ char *error = NULL, *bad = NULL;
    ck_assert_int_eq(libvirt_xml_from_config(c, &p, &bad, &error), -EINVAL);
    vm_config_free(c);
}
END_TEST

/* A literal gateway token would be readable by every libvirt client: refused. */
START_TEST(literal_token_refused)
{
    struct vm_config *c = vm_fixture_load(
        "{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}, \"gateway\": {\"openclaw\":"
        " {\"gateway\": {\"auth\": {\"token\": \"0123456789abcdef0123456789abcdef\"}}}}}");
    _cleanup_free_ char *error = NULL, *xml = NULL;
    ck_assert_int_eq(libvirt_xml_from_config(c, &tcg_user, &xml, &error), -EINVAL);
    ck_assert(strstr(error, "gateway.openclaw.gateway.auth.token"));
    ck_assert(!strstr(error, "0123456789abcdef"));
    vm_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("libvirt_xml");
    TCase *tc = tcase_create("libvirt_xml");
    tcase_add_checked_fixture(tc, vm_fixture_setup, vm_fixture_teardown);
    tcase_add_test(tc, golden_demo_microvm);
    tcase_add_test(tc, golden_q35);
    tcase_add_test(tc, round_trip_metadata);
    tcase_add_test(tc, round_trip_xml_alone);
    tcase_add_test(tc, xml_alone_notes);
    tcase_add_test(tc, domain_changes_win);
    tcase_add_test(tc, foreign_domain_notes);
    tcase_add_test(tc, foreign_vhost_user_vsock);
    tcase_add_test(tc, broken_domains);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, literal_token_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
