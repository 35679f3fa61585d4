#!/usr/bin/env python3
"""BFCL's own Python reference replaying `supo bfcl replay` inputs, every entry isolated as a
fresh process would run it.

Usage: bfcl_apis_part2.py INPUT.jsonl OUTPUT.jsonl

Runs tests/bfcl_reference.py, and before each entry restores BFCL's long-context filler: the
reference's TravelAPI puts the filler's own card and booking dicts into its instances, so an
entry that spends from a filler card changes that card for every later entry of the process.
The Rust classes start every entry from the pristine filler.
"""

import copy
import os
import runpy

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
from bfcl_eval.eval_checker.multi_turn_eval.func_source_code import long_context

SNAPSHOT = {
    name: copy.deepcopy(value)
    for name, value in vars(long_context).items()
    if name.isupper() and isinstance(value, (dict, list))
}
_execute = multi_turn_utils.execute_multi_turn_func_call
_last_entry = [None]


def restore_filler():
    """Puts the filler's values back in place (the classes hold references to them)."""
    for name, value in SNAPSHOT.items():
        live = getattr(long_context, name)
        fresh = copy.deepcopy(value)
        if isinstance(live, dict):
            live.clear()
            live.update(fresh)
        else:
            live[:] = fresh


def execute(func_call_list, initial_config, involved_classes, model_name, test_entry_id,
            *args, **kwargs):
    if test_entry_id != _last_entry[0]:
        _last_entry[0] = test_entry_id
        restore_filler()
    return _execute(func_call_list, initial_config, involved_classes, model_name,
                    test_entry_id, *args, **kwargs)


multi_turn_utils.execute_multi_turn_func_call = execute
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bfcl_reference.py"),
               run_name="__main__")
