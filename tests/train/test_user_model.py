"""`train base --model FILE`: the learner's own module trains through the real loop, unwrapped."""

from __future__ import annotations

from pathlib import Path

import nanochat_cli.model.gpt as reference
from tests.train.conftest import losses, tiny_config_file


def test_train_base_with_a_user_model_file(run_cli, data_home, tmp_path):
    from nanochat_cli.learn import skeleton
    from nanochat_cli.learn.components import COMPONENTS

    # what a learner has after filling in every TODO of the skeleton
    ref = Path(reference.__file__).read_text()
    text = skeleton.make_skeleton(ref, COMPONENTS)
    for comp in COMPONENTS:
        text = skeleton.splice_reference(text, ref, comp)
    user = tmp_path / "gpt.py"
    # prove the learner's code is what runs: their forward counts its calls into a marker file
    marker = tmp_path / "calls.txt"
    text = text.replace("    def forward(self, idx, targets=None, kv_cache=None, loss_reduction: str = \"mean\"):\n",
                        "    def forward(self, idx, targets=None, kv_cache=None, loss_reduction: str = \"mean\"):\n"
                        f"        open({str(marker)!r}, 'a').write('x')\n", 1)
    assert "calls.txt" in text
    user.write_text(text)
    cfg = tiny_config_file(tmp_path, iters=4, eval_every=0, save_every=0)
    r = run_cli("train", "base", "--config", str(cfg), "--model", str(user))
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(losses(data_home)) == 4
    assert marker.is_file() and len(marker.read_text()) >= 4
