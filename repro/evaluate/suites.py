"""The suites reader moved to the facts layer (`repro.suites`); this name stays for existing imports."""

from repro.suites import (  # noqa: F401
    DEFAULT_SUITES_PATH,
    REPO_ROOT,
    SUITE_KINDS,
    ArchiveSpec,
    OfflineData,
    PreparedSource,
    SourceMember,
    Suite,
    TaskSpec,
    get_suite,
    load_offline_data,
    load_suites,
)
