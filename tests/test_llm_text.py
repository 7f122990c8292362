"""The LLM text bridge on StarCraft battles and Crafter: observation texts (golden files),
replies turned into standing orders, errors for anything invalid, messages, the scripted text
policy against a random one, replay, a real local chat server, and a tiny local model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from marl import llm
from marl.llm.backends import FunctionBackend, ReplayBackend, Request, TranscriptWriter
from marl.llm.evaluate import evaluate
from marl.llm.grammar import Message, TextAction, format_reply
from marl.llm.scripted import focus_fire_reply, random_reply, read_observation
from marl.llm.smac_orders import REACHED
from marl.llm.smac_text import SCREEN, plan_teams

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MARL_UPDATE_GOLDEN") == "1"  # rewrite the golden files


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text + "\n")
    assert text + "\n" == path.read_text()


def reply(actions: dict[str, list[TextAction]], **kwargs) -> str:
    return format_reply(actions, **kwargs)


def tag_of(battles, slot: int) -> str:
    return battles.tag(0, slot)


# --- observation texts ------------------------------------------------------------------------
def test_observation_texts_are_stable_and_list_what_the_team_sees():
    battles = llm.make("llm-smac:2s3z", seed=0)
    first = battles.reset(seed=3)[0]
    golden("llm_smac_2s3z_reset.txt", first["Stalker-1"])
    assert battles.reset(seed=3)[0] == first  # same seed, same texts
    # walk everyone into the enemy: the enemies show up with tags, distances and health
    zealot = tag_of(battles, 7)
    for _ in range(6):
        out = battles.step([{a: reply({a: [TextAction("Attack_Unit", (zealot,))]})
                             for a in battles.agents}])
    text = out.obs[0]["Zealot-1"]
    golden("llm_smac_2s3z_fight.txt", text)
    seen = read_observation(text)[0]
    state = battles.arrays()
    alive = state["alive"][0]
    near = np.linalg.norm(state["pos"][0] - state["pos"][0][2], axis=-1) < 9
    expect = {tag_of(battles, s) for s in range(5, 10) if alive[s] and near[s]}
    assert {u.tag for u in seen.enemies} == expect and expect


def test_commander_and_medivac_texts():
    battles = llm.make("llm-smac:MMM", teams="commander", seed=0)
    text = battles.reset(seed=1)[0]["Commander"]
    golden("llm_smac_MMM_commander.txt", text)
    assert battles.agents == ["Commander"]
    assert text.count("Valid Actions:") == 11  # the section, then one line per team
    assert "Team Medivac-1 Valid Actions:\n        <Stop()>  <No_Operation()>  " \
           "<Move_Screen(screen)>  <Heal_Unit(tag)>" in text


def test_team_layouts():
    battles = llm.make("llm-smac:2s3z", seed=0)
    units = battles.units[:5]
    assert list(plan_teams(units, "unit")) == ["Stalker-1", "Stalker-2", "Zealot-1", "Zealot-2",
                                               "Zealot-3"]
    by_type = plan_teams(units, "type")
    assert {k: v[0].units for k, v in by_type.items()} == {"Stalker": (0, 1),
                                                          "Zealot": (2, 3, 4)}
    custom = plan_teams(units, {"Left": ["Stalker-1", "Zealot-1"],
                                "Right": ["Stalker-2", "Zealot-2", "Zealot-3"]})
    assert [t.name for t in custom["Left"]] == ["Stalker-1", "Zealot-1"]
    with pytest.raises(ValueError, match="not given: Zealot-3"):
        plan_teams(units, {"A": ["Stalker-1", "Stalker-2", "Zealot-1", "Zealot-2"]})
    with pytest.raises(ValueError, match="given twice: Zealot-1"):
        plan_teams(units, {"A": ["Stalker-1", "Stalker-2", "Zealot-1"],
                           "B": ["Zealot-1", "Zealot-2", "Zealot-3"]})
    with pytest.raises(ValueError, match="teams="):
        plan_teams(units, "squads")
    with pytest.raises(ValueError, match="llm-smac ids"):
        llm.make("llm-smac:4m")
    with pytest.raises(ValueError, match="unknown text environment"):
        llm.make("smac:3m")


# --- replies become standing orders -----------------------------------------------------------
def test_a_move_stands_until_the_point_is_reached():
    battles = llm.make("llm-smac:3m", seed=0, decision_seconds=0.3)  # one step per decision
    battles.reset(seed=0)
    start = battles.arrays()["pos"][0, 0].copy()
    goal_screen = (int(start[0] / 32 * SCREEN), int((start[1] - 4) / 32 * SCREEN))  # due south
    goal = np.array([goal_screen[0] / SCREEN * 32, goal_screen[1] / SCREEN * 32])
    out = battles.step([{"Marine-1": reply({"Marine-1": [TextAction("Move_Screen",
                                                                    point=goal_screen)]})}])
    assert out.info[0]["actions"] == 1 and out.info[0]["rejected"] == 0
    ys = []
    for _ in range(8):  # no more replies: the order stands
        battles.step([{}])
        ys.append(battles.arrays()["pos"][0, 0, 1])
    assert ys[0] < start[1] and abs(ys[-1] - goal[1]) <= REACHED + 1e-6
    assert ys[-1] == ys[-2]  # reached: the unit stops
    assert battles.arrays()["avail"][0, 0, 1]  # and it is alive and idle


def test_queued_actions_run_in_order_and_an_attack_walks_into_range():
    battles = llm.make("llm-smac:3m", seed=0, decision_seconds=0.3)
    battles.reset(seed=0)
    enemy = tag_of(battles, 3)
    pos = battles.arrays()["pos"][0, 0]
    north = (int(pos[0] / 32 * SCREEN), int(pos[1] / 32 * SCREEN) + 12)  # 3 units north
    text = reply({"Marine-1": [TextAction("Move_Screen", point=north),
                               TextAction("Attack_Unit", (enemy,))]})
    battles.step([{"Marine-1": text}])
    orders = battles.book.current(0, 0)
    assert [o.kind for o in orders] == ["move", "attack"] or [o.kind for o in orders] == [
        "attack"]
    for _ in range(30):
        battles.step([{}])
        if battles.book.current(0, 0)[0].kind == "attack":
            break
    assert battles.book.current(0, 0)[0].kind == "attack"
    hp = battles.arrays()["health"][0, 3]
    for _ in range(15):
        battles.step([{}])
    assert battles.arrays()["health"][0, 3] < hp  # it walked into range and shot


def test_invalid_replies_are_no_ops_with_error_lines():
    battles = llm.make("llm-smac:3m", seed=0)
    battles.reset(seed=0)
    enemy, ally = tag_of(battles, 3), tag_of(battles, 1)
    battles.step([{"Marine-1": reply({"Marine-1": [TextAction("Attack_Unit", (enemy,))]})}])
    standing = battles.book.current(0, 0)
    bad = {
        "Marine-1": "Actions:\n  Team Marine-1:\n    <Atack_Unit(" + enemy + ")>\n"
                    "    <Attack_Unit(" + ally + ")>\n    <Move_Screen([12, 900])>\n",
        "Marine-2": "Actions:\n    <Attack_Unit(0xdeadbeef)>\n    <Stop(",
        "Marine-3": "I will attack now!",
    }
    out = battles.step([bad])
    assert battles.book.current(0, 0) == standing  # no valid action: the orders stand
    assert battles.book.current(0, 1) == [] and battles.book.current(0, 2) == []
    info = out.info[0]
    assert info["rejected"] == 4 and info["parse_errors"] >= 2 and info["actions"] == 4
    texts = out.obs[0]
    one = texts["Marine-1"].split("Errors in your last reply:\n")[1].split("Communications:")[0]
    assert "unknown action 'Atack_Unit'" in one and "is an ally" in one
    assert "off the screen" in one
    assert "no unit has the tag 0xdeadbeef" in texts["Marine-2"]
    assert "Actions:" in texts["Marine-3"].split("Errors in your last reply:")[1]
    assert "Errors in your last reply" not in battles.step([{}]).obs[0]["Marine-1"]


def test_messages_reach_agents_and_channels():
    battles = llm.make("llm-smac:3m", seed=0)
    battles.reset(seed=0)
    battles.step([{"Marine-2": "Communications:\n    <ListenTo(Channel-1)>",
                   "Marine-3": "Communications:\n    <ListenTo(Channel-1)>"}])
    messages = [Message("Marine-2", "hold"), Message("Channel-1", "go east"),
                Message("Ghost", "hi")]
    out = battles.step([{"Marine-1": reply({"Marine-1": [TextAction("No_Operation")]},
                                           messages=messages)}])
    texts = out.obs[0]
    assert "From Marine-1: '''hold'''" in texts["Marine-2"]
    assert "From Marine-1 on Channel-1: '''go east'''" in texts["Marine-2"]
    assert "From Marine-1 on Channel-1: '''go east'''" in texts["Marine-3"]
    assert "go east" not in texts["Marine-1"] and "no other agent named 'Ghost'" in \
        texts["Marine-1"]


def test_decisions_are_once_per_game_second():
    battles = llm.make("llm-smac:3m", seed=0)
    assert battles.decision_steps == 3  # 1 s / (8 loops / 22.4 loops per second)
    battles.reset(seed=0)
    battles.step([{}])
    assert int(battles.arrays()["t"][0]) == 3
    assert llm.make("llm-smac:3m", decision_seconds=2.0).decision_steps == 6
    with pytest.raises(ValueError, match="decision_seconds"):
        llm.make("llm-smac:3m", decision_seconds=0)


# --- policies, replay, a server, a model ------------------------------------------------------
@pytest.mark.parametrize("map_name", ["3m", "2s3z"])
def test_the_scripted_text_policy_beats_a_random_one(map_name):
    battles = llm.make(f"llm-smac:{map_name}", 8, seed=0)
    scripted = evaluate(battles, FunctionBackend(focus_fire_reply), episodes=16)["summary"]
    rand = evaluate(battles, FunctionBackend(random_reply), episodes=16)["summary"]
    assert scripted["kills_mean"] > rand["kills_mean"]
    assert scripted["damage_dealt_mean"] > 2 * rand["damage_dealt_mean"]
    assert scripted["invalid_action_rate"] == 0.0


def test_replaying_a_transcript_reproduces_the_episodes(tmp_path):
    battles = llm.make("llm-smac:2s3z", 4, seed=0)
    with TranscriptWriter(tmp_path / "t.jsonl") as transcript:
        first = evaluate(battles, FunctionBackend(focus_fire_reply), episodes=6, seed=5,
                         transcript=transcript)
    again = evaluate(battles, ReplayBackend(tmp_path / "t.jsonl"), episodes=6, seed=5)
    strip = ("latencies", "wave_wall_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in first["episodes"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in again["episodes"]]
    other = evaluate(battles, ReplayBackend(tmp_path / "t.jsonl"), episodes=6, seed=6)
    assert other["summary"]["failures"] > 0  # another battle: the transcript does not fit


def test_a_real_chat_server_plays_3m_with_scripted_replies():
    pytest.importorskip("openai")
    from marl.llm.backends import OpenAIBackend
    from marl.llm.chat_server import ChatServer, Response

    def answer(body: dict) -> Response:
        request = Request("server", body["messages"])
        return Response(focus_fire_reply(request))

    battles = llm.make("llm-smac:3m", 4, seed=0)
    with ChatServer(answer) as server:
        result = evaluate(battles, OpenAIBackend("scripted", server.base_url), episodes=8)
        asked = len(server.records)
    summary = result["summary"]
    assert summary["kills_mean"] > 0 and summary["timeouts"] == 0 and summary["failures"] == 0
    assert asked == summary["queries"] and summary["tokens_in"] > 0


def test_a_tiny_random_model_only_yields_no_ops_and_errors(tiny_model):
    from marl.llm.backends import TransformersBackend

    battles = llm.make("llm-smac:3m", 1, seed=0)
    result = evaluate(battles, TransformersBackend(tiny_model, max_new_tokens=12),
                      episodes=1, seed=0, history=0)
    record = result["episodes"][0]
    assert record["queries"] > 0 and record["tokens_out"] > 0
    assert record["rejected"] + record["parse_errors"] > 0
    assert record["actions"] == record["rejected"]  # nothing it wrote was carried out
    assert "Last Actions:\n    None" in battles.last_obs[0]["Marine-1"]


# --- PettingZoo faces and Crafter -------------------------------------------------------------
def test_pettingzoo_api():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(llm.parallel_env("llm-smac:3m", seed=0), num_cycles=30)


@pytest.mark.slow
def test_pettingzoo_api_crafter():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(llm.parallel_env("llm-crafter:2p", area=24, length=20), num_cycles=25)


def test_pettingzoo_face_plays_a_battle_to_its_end():
    env = llm.parallel_env("llm-smac:3m", seed=0)
    obs, _ = env.reset(seed=0)
    rounds = 0
    while env.agents:
        actions = {a: focus_fire_reply(Request(a, [{"role": "user", "content": obs[a]}]))
                   for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        rounds += 1
    assert rounds > 3 and (all(terms.values()) or all(truncs.values()))
    assert set(infos[next(iter(infos))]) >= {"won", "damage_dealt", "kills", "deaths"}


def test_crafter_players_act_through_text():
    worlds = llm.make("llm-crafter:2p", 1, seed=0, area=32, length=60)
    obs = worlds.reset(seed=0)[0]
    text = obs["player_0"]
    assert text.startswith("You are player_0") and "Valid Actions:" in text
    assert "<Make_Wood_Pickaxe()>" not in text.split("Valid Actions:")[1].split("\n")[1]
    out = worlds.step([{
        "player_0": reply({"player_0": [TextAction("Make_Wood_Pickaxe")]}),
        "player_1": reply({"player_1": [TextAction("Move_Left")]}),
    }])
    info = out.info[0]
    assert info["rejected"] == 1 and info["actions"] == 2
    assert "Make_Wood_Pickaxe()>: not possible now" in out.obs[0]["player_0"]
    assert "Last Actions:\n    <Move_Left()>" in out.obs[0]["player_1"]
    summary = evaluate(worlds, FunctionBackend(lambda r: reply({r.key.split("/")[1]: [
        TextAction("Do")]})), episodes=1, seed=0)["summary"]
    assert "score" in summary and summary["queries"] > 0


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised one-layer GPT-2 with a word-level tokenizer trained here."""
    pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["Actions: Team Marine-1: <Attack_Unit(0x100030001)> <Stop()>",
              "Game Info: Time Unit Marine Tag Health Distance ScreenPos",
              "Analysis: focus fire on the weakest enemy in sight"] * 4
    words.train_from_iterator(corpus, trainers.WordLevelTrainer(
        special_tokens=["[UNK]", "[EOS]", "[PAD]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]",
                                        eos_token="[EOS]", pad_token="[PAD]")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=4096,
                                       vocab_size=len(tokenizer)))
    path = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
