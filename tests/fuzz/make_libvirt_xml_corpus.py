#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_libvirt_xml (tests/fuzz/corpus/libvirt_xml/): the domains
ocvm exports (tests/golden/libvirt-*.xml), the same without ocvm's metadata (the import then
reads the XML itself), after a `virsh edit`, and the domains the import must refuse. Run it
again only to change the seeds (or after the golden files changed)."""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")
OUT = os.path.join(HERE, "corpus", "libvirt_xml")

PLAIN = """<domain type="kvm">
  <name>plain</name>
  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
  <memory unit="KiB">1048576</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch="x86_64" machine="q35">hvm</type>
    <kernel>/boot/vmlinuz</kernel>
    <initrd>/boot/initrd.img</initrd>
    <cmdline>console=ttyS0 root=/dev/vda ocvm.ip=10.0.0.2/24 ocvm.gw=10.0.0.1 ocvm.dns=10.0.0.1</cmdline>
    <boot dev="hd"/>
  </os>
  <features><acpi/><apic/><pae/></features>
  <pm><suspend-to-mem enabled="no"/></pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type="file" device="disk"><source file="/var/lib/x.qcow2"/><target dev="vda"/></disk>
    <interface type="ethernet">
      <mac address="52:54:00:12:34:56"/>
      <target dev="vm-plain" managed="no"/>
      <model type="virtio"/>
    </interface>
    <interface type="bridge"><source bridge="br0"/></interface>
    <filesystem type="mount" accessmode="passthrough">
      <driver type="virtiofs"/>
      <source dir="/srv/data"/>
      <target dir="data"/>
      <readonly/>
    </filesystem>
    <vsock model="virtio"><cid auto="no" address="7"/></vsock>
    <graphics type="vnc" port="-1"/>
    <video><model type="cirrus"/></video>
    <input type="tablet" bus="usb"/>
  </devices>
</domain>
"""


def write(name, text):
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text)


def main():
    os.makedirs(OUT, exist_ok=True)
    for g in sorted(os.listdir(GOLDEN)):
        m = re.fullmatch(r"libvirt-(.*)\.xml", g)
        if not m:
            continue
        name = m.group(1)
        xml = open(os.path.join(GOLDEN, g)).read()
        no_meta = re.sub(r"\s*<metadata>.*?</metadata>", "", xml, flags=re.S)
        write(name, xml)
        write(name + "_without_metadata", no_meta)
        write(name + "_virsh_edit", re.sub(r"<memory unit=\"MiB\">\d+</memory>",
                                          "<memory unit=\"GiB\">8</memory>", xml)
              .replace("<vcpu placement=\"static\">", "<vcpu placement=\"static\">1")
              .replace("</cmdline>", " debug</cmdline>"))
        write(name + "_metadata_not_object",
              re.sub(r"(<ocvm:config[^>]*>).*?(</ocvm:config>)", r"\g<1>[1, 2]\g<2>", xml,
                     flags=re.S))
        write(name + "_metadata_bad_json",
              re.sub(r"(<ocvm:config[^>]*>).*?(</ocvm:config>)", r'\g<1>{"name": \g<2>', xml,
                     flags=re.S))
        write(name + "_no_kernel", re.sub(r"\s*<kernel>.*?</kernel>", "", no_meta))
        write(name + "_two_vsock", no_meta.replace(
            "</devices>", '<vsock model="virtio"><cid auto="no" address="3"/></vsock>\n'
            '<vsock model="virtio"><cid auto="yes"/></vsock>\n</devices>'))
    write("plain", PLAIN)
    write("doctype", '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n'
          + PLAIN.replace("<name>plain</name>", "<name>&b;</name>"))
    write("external_entity", '<!DOCTYPE domain SYSTEM "http://example.com/x.dtd">\n' + PLAIN)
    write("root_not_domain", "<network><name>default</name></network>\n")
    write("not_xml", "<domain><name>x</nam></domain>\n")
    write("empty_domain", "<domain/>\n")
    write("memory_units", PLAIN.replace('<memory unit="KiB">1048576</memory>',
                                        '<memory unit="T">18446744073709551615</memory>'))
    write("vcpu_huge", PLAIN.replace("<vcpu>2</vcpu>", "<vcpu>99999999999999999999</vcpu>"))
    write("namespaces", PLAIN.replace("<domain type=\"kvm\">",
                                      '<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/'
                                      'domain/qemu/1.0">').replace(
        "</domain>", "<qemu:commandline><qemu:arg value='-s'/><qemu:arg/></qemu:commandline>"
        "\n</domain>"))


if __name__ == "__main__":
    sys.exit(main())
