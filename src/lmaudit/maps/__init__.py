"""LLMMaps-style knowledge maps: a metric stratified over a knowledge hierarchy, several runs side by side.

    from lmaudit.maps import MapRun, build_map, builtin, layout, save_png, save_svg
    kmap = build_map([MapRun("smollm2", records)], builtin("mmlu"), "acc")
    save_svg(layout(kmap), "map.svg")

Node values come from `lmaudit.runner.summarize_records` (the code that writes results.json); CIs are Wilson
intervals for 0/1 scores; differences between runs are paired (bootstrap CI, McNemar's exact p).
"""

from lmaudit.maps.hierarchy import BUILTIN, UNMAPPED, Hierarchy, builtin, flat, from_dict, load, resolve, suggest
from lmaudit.maps.induce import HIERARCHY_FILE, InducedHierarchy, area_name, induce_hierarchy
from lmaudit.maps.icicle import Box, Layout, layout
from lmaudit.maps.render import save_png, save_svg, svg
from lmaudit.maps.stats import is_binary, mcnemar_exact, paired_bootstrap, wilson
from lmaudit.maps.tree import (
    DEFAULT_MIN_N,
    ROW_COLUMNS,
    KnowledgeMap,
    MapNode,
    MapRun,
    NodeDiff,
    NodeStats,
    build_map,
)

__all__ = ["BUILTIN", "Box", "DEFAULT_MIN_N", "HIERARCHY_FILE", "Hierarchy", "InducedHierarchy", "KnowledgeMap",
           "Layout", "MapNode", "MapRun", "NodeDiff", "NodeStats", "ROW_COLUMNS", "UNMAPPED", "area_name", "build_map",
           "builtin", "flat", "from_dict", "induce_hierarchy", "is_binary", "layout", "load", "mcnemar_exact",
           "paired_bootstrap", "resolve", "save_png", "save_svg", "suggest", "svg", "wilson"]
