"""The registry, its errors, and the ``marl`` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from marl.cli import main
from marl.envs import UnknownEnvId, make
from marl.envs.lbf import parse_id


def test_ids_mirror_lbforaging_names():
    assert parse_id("8x8-2p-3f") == {
        "players": 2,
        "field_size": (8, 8),
        "max_num_food": 3,
        "sight": 8,
        "force_coop": False,
        "grid_observation": False,
    }
    assert parse_id("2s-10x10-3p-3f-coop")["sight"] == 2
    assert parse_id("2s-10x10-3p-3f-coop")["force_coop"] is True
    assert parse_id("grid-12x9-4p-5f")["field_size"] == (12, 9)
    assert make("lbf:30x30-9p-12f").spec.n_agents == 9  # any size, players and food


def test_unknown_id_lists_closest():
    with pytest.raises(UnknownEnvId, match=r"closest: .*lbf:8x8-2p-3f"):
        make("lbf:8x8-2p-3")
    with pytest.raises(UnknownEnvId, match="lbf:8x8-2p-3f"):
        make("lbff:8x8-2p-3f")
    with pytest.raises(UnknownEnvId, match="Families"):
        make("nothing-like-it")


def test_unknown_kwarg_is_named():
    with pytest.raises(TypeError, match=r"unknown argument 'sigth'.*did you mean 'sight'"):
        make("lbf:8x8-2p-3f", sigth=2)
    with pytest.raises(TypeError, match="'players' is set by the id"):
        make("lbf:8x8-2p-3f", players=3)


def test_cli_lists_envs(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "lbf:[grid-][Ks-]RxC-Np-Ff[-coop]" in out and "lbforaging:" in out
    assert main(["envs", "--all"]) == 0
    ids = capsys.readouterr().out.split()
    assert "lbf:8x8-2p-3f" in ids and "lbf:2s-10x10-3p-3f-coop" in ids


@pytest.mark.slow
def test_console_script_runs(tmp_path):
    """The installed ``marl`` entry point (run outside the source tree)."""
    script = Path(sys.executable).parent / "marl"
    out = subprocess.run(
        [str(script), "envs"], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    assert "Level-Based Foraging" in out


def test_every_command_prints_its_help(capsys):
    """argparse %-formats help strings: a bare "%" in one (e.g. "95%") broke ``marl --help``."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listing = capsys.readouterr().out
    commands = listing.split("{", 1)[1].split("}", 1)[0].split(",")
    assert {"train", "sweep", "report", "eval"} <= set(commands), commands
    for command in [*([c] for c in commands), ["ued", "pretrain"]]:
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0, command
        assert capsys.readouterr().out.startswith("usage: marl " + command[0])
