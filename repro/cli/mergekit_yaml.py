"""`repro mergekit-yaml CONFIG OUT [mergekit options]`: stock mergekit-yaml with our methods registered.

Stock `mergekit-yaml` has no plugin hook, so this wrapper registers our methods (`tsv_m`, `iso_c`,
`task_arithmetic_sb`, `ties_sb` and any plugin's) and then runs mergekit's own click command unchanged
(same arguments, options and behaviour). A merge directory's `repro_merge.yaml` reproduces that merge.
It lives in the CLI layer because it takes argv and returns an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

from repro.errors import MergeError


def run_mergekit_yaml(argv: Sequence[str]) -> int:
    """Run mergekit-yaml with `argv` (e.g. ["config.yaml", "out/", "--cuda"]); returns an exit code."""
    # mergekit and the library: loaded when the command runs, so that `repro --help` stays light
    import click
    from mergekit.scripts.run_yaml import main as mergekit_yaml

    from repro.merge.mergekit_plugin import register_methods

    register_methods()
    try:
        mergekit_yaml.main(args=list(argv), prog_name="repro mergekit-yaml", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        return int(exit_.exit_code)
    except click.exceptions.Abort:
        return 130
    except click.ClickException as error:
        raise MergeError(error.format_message(), field="mergekit-yaml") from error
    except OSError as error:
        raise MergeError(f"{error.strerror or error}", path=getattr(error, "filename", None)) from error
    except (ValueError, RuntimeError, KeyError) as error:
        raise MergeError(f"mergekit failed: {type(error).__name__}: {error}") from error
    return 0
