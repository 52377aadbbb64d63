#!/usr/bin/env python3
"""Fetches Prometheus text and parses it with the prometheus_client parser (a real one).

usage: parse_metrics.py URL [CAFILE]
Prints one line per sample, labels sorted: NAME{k="v",...} VALUE (VALUE as %g), and exits 1
with the parser's complaint when the text does not parse.
"""
import ssl
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

url = sys.argv[1]
context = ssl.create_default_context(cafile=sys.argv[2]) if len(sys.argv) > 2 else None
text = urllib.request.urlopen(url, context=context, timeout=10).read().decode()
try:
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "gauge", "histogram"):
            raise ValueError("family %s has type %s" % (family.name, family.type))
        for sample in family.samples:
            labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(sample.labels.items()))
            print("%s{%s} %s" % (sample.name, labels, "%.17g" % sample.value))
except Exception as error:
    print("does not parse: %s" % error, file=sys.stderr)
    sys.exit(1)
