"""utils/ is a stack that follows the lessons: importing a lower module never loads a higher one."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT  # noqa: E402

# module -> modules of the course it must not load (a fresh interpreter imports it alone)
LAYERS = {
    "utils.basic_unet": ["utils.unet_utils", "utils.ddpm_utils", "utils.fast"],     # 01-02's model, not 03's
    "utils.unet_utils": ["utils.ddpm_utils", "utils.fast"],                          # no network imports the math
    "utils.ddpm_utils": ["utils.fast", "utils.basic_unet", "utils.unet_utils"],      # the math, not the speed policy
    "utils.path_apply": ["utils.fast", "utils.ddpm_utils"],                           # applies a path, chooses none
    "utils.fast_path": ["utils.fast", "utils.path_apply", "utils.path_probe"],        # the switches alone
}


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_a_lower_module_loads_no_higher_one(module):
    code = f"import json, sys; import {module}; print(json.dumps(sorted(m for m in sys.modules if m.startswith('utils'))))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                       check=True).stdout)
    assert module in loaded
    assert not set(LAYERS[module]) & set(loaded), f"{module} loads {sorted(set(LAYERS[module]) & set(loaded))}"
