"""How the kit reads the paper's tables where their captions and numbers disagree (the evidence is in
docs/reviewers.md; `repro verify --published` recomputes it from paper_artifacts/reference/tables.csv)."""

from __future__ import annotations

DELTA_READING = (
    "Reading of the delta: the caption says \"mean relative accuracy improvement\", but the paper's numbers are "
    "the mean absolute difference in accuracy points over all combinations: Table 2 delta - Table 1 (TA) delta "
    "is one constant per model at every n, equal to Base - Best FT (LLAMA 3.1 8B: -2.14 at every n, Base 56.9 "
    "- Best FT 59.0 = -2.1), which holds for differences in points and not for ratios. The kit computes the "
    "mean difference in points (docs/reviewers.md)."
)
TABLE2_NOT_REPRODUCIBLE = (
    "The published Table 2 cannot be matched by construction: its n = 1 column gives 17-75% of the single "
    "checkpoints beating the best single checkpoint (none can beat itself), and its Qwen rows print a Best FT "
    "below the base although 25-33% of the checkpoints beat the base (`repro verify --published`). This "
    "table follows the caption (reference: the best single checkpoint of each base); compare its n >= 2 "
    "columns with the paper (docs/reviewers.md)."
)
NOTES = {
    "table1": (DELTA_READING,),
    "table2": (DELTA_READING, TABLE2_NOT_REPRODUCIBLE),
    "table3": (DELTA_READING,),
}
