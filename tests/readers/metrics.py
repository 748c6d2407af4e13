"""Reads a metrics file written by `tributary run --metrics-file` with the Prometheus Python
client's own parser of the text exposition format, an independent witness of what the
file says, and prints its families as JSON:

    {"family": {"type": ..., "help": ..., "samples": [{"name", "labels", "value"}]}}

Usage: metrics.py FILE.prom

Exits non-zero when the file does not parse, or holds a family twice (node_exporter's
textfile collector refuses such a file).
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    families = {}
    for family in text_string_to_metric_families(text):
        if family.name in families:
            sys.exit(f"{path}: the family {family.name} appears twice")
        families[family.name] = {
            "type": family.type,
            "help": family.documentation,
            "samples": [
                {"name": s.name, "labels": s.labels, "value": s.value}
                for s in family.samples
            ],
        }
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
