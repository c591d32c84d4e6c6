"""Datasets: the bundled benchmark generator, dataset adapters (source layout -> manifests) and splits.

- :mod:`mbcd.data.synth`: the generator of the bundled multi-domain, multi-modal benchmark.
- :mod:`mbcd.data.manifest`: the manifest TSV format of ``docs/contracts.md`` (read, write, validate).
- :mod:`mbcd.data.adapters`: one registered adapter per source layout (``synth``, ``epic_kitchens``, ``hac``,
  ``video_folder``), all producing the same manifest rows.
- :mod:`mbcd.data.splits`: per-experiment train / val / test manifests for both protocols.
"""
