#!/bin/sh
# Writes the seed corpus of fuzz_config (tests/fuzz/corpus/config/): every config of the regress
# corpus (tests/configs/{pass,fail,unsafe}) and of examples/, named DIR_NAME. fuzz_config loads
# its input as tests/configs/pass/fuzz.json, so each example also gets a _stub copy whose host
# files name ones that exist from there (../vmlinuz.stub, ..), to be accepted and go deeper.
# Run it again after the configs changed; inputs the fuzzer added are kept.
set -eu
cd "$(dirname "$0")/../.."
out=tests/fuzz/corpus/config
mkdir -p "$out"
for d in pass fail unsafe; do
    for f in tests/configs/$d/*.json; do
        cp "$f" "$out/${d}_$(basename "$f" .json)"
    done
done
for f in examples/*.json; do
    name=example_$(basename "$f" .json)
    cp "$f" "$out/$name"
    sed -E 's#"(kernel|initrd)": *"[^"]+"#"\1": "../vmlinuz.stub"#g; s#"source": *"[^"]+"#"source": ".."#g' \
        "$f" >"$out/${name}_stub"
done
