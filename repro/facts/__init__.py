"""The facts layer: the only readers of the protocol's data files, and the values they share with the code.

    config, config_schema, config_checks   configs/*.yaml (experiments)
    lockfile, lockfile_writer, lockfile_header   checkpoints.lock (pinned input models)
    suites          configs/suites.yaml (evaluation suites and their offline data)
    reference       paper_artifacts/reference/ (the published tables and text claims)
    subset_sampler  the seeded subsets of checkpoints each merge size draws
    input_problems  one YAML loader and every problem of a file reported at once
    choices, paths  the closed sets of values and the file locations config and code share

Nothing here imports torch or the merge, evaluation, runner or report code. The method catalog
(repro.method_catalog) is read by these modules but lives beside the methods.
"""
