"""``bouncewatch rules``: check a rules file, or print the packaged default one."""

from __future__ import annotations

import argparse
import sys

from alerts.rules import RulesError, default_rules_text, load_rules, parse_rules
from schemas.durations import format_duration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("rules", help="validate a rules file or print the defaults")
    actions = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate", help="check a rules file; every problem is reported with its line"
    )
    validate.add_argument(
        "rules", nargs="?", help="the YAML rules file (default: the packaged default rules)"
    )
    validate.set_defaults(func=run_validate)
    default = actions.add_parser("default", help="print the packaged default rules file")
    default.set_defaults(func=run_default)


def run_validate(args: argparse.Namespace) -> int:
    try:
        if args.rules:
            ruleset = load_rules(args.rules)
            source = args.rules
        else:
            ruleset = parse_rules(default_rules_text(), "default_rules.yaml")
            source = "default rules"
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the file was refused", file=sys.stderr)
        return 1
    config = ruleset.aggregation_config()
    print(f"{source}: ok, {len(ruleset.rules)} rule(s)")
    for rule in ruleset.rules:
        group = f" by isp+{'+'.join(rule.group_by)}" if rule.group_by else " by isp"
        overrides = f", overrides for {', '.join(sorted(rule.overrides))}" if rule.overrides else ""
        print(
            f"  {rule.name}: {rule.type} {rule.metric} over {format_duration(rule.window)}"
            f"{group}{overrides}"
        )
    print(
        f"buckets of {format_duration(config.bucket_seconds)}, kept "
        f"{format_duration(config.retention_seconds)}; allowed lateness "
        f"{format_duration(config.lateness_seconds)}"
    )
    return 0


def run_default(args: argparse.Namespace) -> int:
    sys.stdout.write(default_rules_text())
    return 0
