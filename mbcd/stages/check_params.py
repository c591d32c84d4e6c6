"""``mbcd check-params``: validate a params file (schema + registries) and print a summary."""

from __future__ import annotations

from mbcd.stages.common import load, parser, run_stage


def main(argv: list[str] | None = None) -> int:
    p = parser("check-params", __doc__ or "")
    args = p.parse_args(argv)

    def body() -> None:
        params = load(args)
        exp = params["experiments"]
        print(
            f"{args.params}: ok - datasets {exp['datasets']}, protocols {exp['protocols']}, "
            f"modality sets {exp['modality_sets']}, algorithms {exp['algorithms']}, seeds {exp['seeds']}"
        )

    return run_stage(body)
