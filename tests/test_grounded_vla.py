"""The grounded VLA (``policies.grounded_vla``) and the instruction generator it learns from."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import envs
from embodied.evaluation.harness import evaluate
from embodied.saved_agents import agent_factory_from_run, load_bundle
from envs.instructions import GENERATED_SPLITS, HELDOUT, HELDOUT_SYNONYMS, LEXICON, describe
from envs.task_features import TaskFeatures
from policies.grounded_vla.config import PRESETS, GroundedVLAConfig
from policies.grounded_vla.links import features_of_links, link_targets, plan_links
from policies.grounded_vla.model import TARGET_KEYS, LanguageGrounder
from policies.grounded_vla.tokenizer import InstructionError, PieceTokenizer
from policies.perception import identity_table
from tests.test_architecture import ROOT, _imports, _modules

TASKS = ("reach", "push", "pick-place", "stack", "sort", "chain")
CAMERAS = ("front", "wrist")


# ---------------------------------------------------------------------- the generator


@pytest.mark.parametrize("task", TASKS)
def test_every_split_says_every_task_deterministically(task):
    for split in GENERATED_SPLITS:
        texts = []
        for _ in range(2):
            env = envs.make(task, obs_mode="state", language=split)
            _, info = env.reset(seed=3)
            texts.append(info["instruction"])
            env.close()
        assert texts[0] == texts[1] and texts[0].strip()
        held = split.removeprefix("heldout-")
        if held in ("passive", "where"):
            assert info["phenomena"]["order"] == held
        elif held == "relative":
            assert info["phenomena"]["noun"] == held
        elif held == "synonym":
            assert info["phenomena"]["synonym"] == "heldout"


def _episodes(task, n):
    env = envs.make(task, obs_mode="state")
    out = []
    for seed in range(n):
        env.reset(seed=seed)
        names = [f"{env._episode.colors[o.name]}_{o.kind}" for o in env.objects]
        out.append((list(env.plan), names))
    env.close()
    return out


@pytest.mark.parametrize("task", TASKS)
def test_training_split_never_draws_a_heldout_phenomenon(task):
    rng = np.random.default_rng(0)
    held_words = HELDOUT_SYNONYMS[task]
    for plan, names in _episodes(task, 5):
        for _ in range(40):
            text, phenomena = describe(task, plan, names, rng, "varied")
            assert phenomena["order"] not in HELDOUT["order"]
            assert phenomena["noun"] not in HELDOUT["noun"]
            assert phenomena["frame"] not in HELDOUT["frame"]
            assert phenomena["synonym"] == "train"
            assert not held_words & set(text.replace(".", " ").replace(",", " ").split())


def test_each_heldout_synonym_is_seen_in_another_tasks_training():
    uses = {"reach": {"target", "reach"}, "push": {"cube", "pad", "push"},
            "pick-place": {"cube", "pad", "carry"}, "stack": {"cube", "stack"},
            "sort": {"cube", "pad", "carry"}, "chain": {"cube", "pad", "carry", "push"}}  # fmt: skip
    trained = {
        t: {w for r in roles for phrase in LEXICON[r] if phrase not in HELDOUT_SYNONYMS[t]
            for w in phrase.split()}
        for t, roles in uses.items()
    }  # fmt: skip
    for task, held in HELDOUT_SYNONYMS.items():
        for phrase in held:
            assert any(phrase in LEXICON[r] for r in uses[task]), f"{task} never says {phrase}"
            for word in set(phrase.split()) - {"to"}:  # "to": a preposition every task says
                assert any(word in trained[t] for t in TASKS if t != task), (
                    f"{word!r} (held out of {task}) is in no other task's training"
                )


# ---------------------------------------------------------------------- tokenizer


def test_tokenizer_shares_pieces_of_unseen_words_and_refuses_bad_text():
    tok = PieceTokenizer(buckets=4096, max_words=8)
    block, blocks, cube = (set(tok.pieces(w)) for w in ("block", "blocks", "cube"))
    assert len(block & blocks) >= len(block) // 2 and len(block & cube) <= 2
    assert tok.encode("put the red cube").shape == (8, tok.max_pieces)
    with pytest.raises(InstructionError, match="no words"):
        tok.encode(" ,. ")
    with pytest.raises(InstructionError, match="at most 8"):
        tok.encode("put the red cube on the blue pad right now")


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="d_model"):
        GroundedVLAConfig(d_model=30, heads=4)
    with pytest.raises(ValueError, match="language must be one of"):
        GroundedVLAConfig(language="heldout-where")
    with pytest.raises(ValueError, match="previous_action_dropout needs history"):
        GroundedVLAConfig(previous_action_dropout=0.5)


# ---------------------------------------------------------------------- links and features


@pytest.mark.parametrize("task", TASKS)
def test_plan_links_give_the_parsed_agents_features(task):
    """The action head reads the same features as the parsed-language agents when its links
    are right: the plan's links on the identity layout == the parser's on the scene layout."""
    env = envs.make(task, obs_mode="state")
    obs, info = env.reset(seed=5)
    kinds = tuple(o.kind for o in env.objects)
    states, proprio = [obs["object_state"]], [obs["proprio"]]
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
        states.append(obs["object_state"])
        proprio.append(obs["proprio"])
    env.close()
    states, proprio = np.stack(states), np.stack(proprio)
    tables = identity_table(states, kinds)
    links = plan_links([s.label for s in env.plan])
    ours = features_of_links(tables, proprio, tables[0], links)
    tf = TaskFeatures(kinds)
    from policies.bc_keypoints import table_features

    parsed = table_features(tables, proprio, info["instruction"], kinds)
    assert tf.links(tf.bind(info["instruction"], states[0]))  # the template parses
    np.testing.assert_allclose(ours, parsed, atol=1e-5)


def test_no_module_the_vla_agent_loads_imports_the_parser():
    mods = _modules()

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    seen, todo = set(), ["policies.grounded_vla.end_to_end"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages' __init__
        todo += [t for n in _imports(mods[module]) if (t := resolve(n)) and t not in seen]
    assert "policies.grounded_vla.model" in seen and "policies.perception" in seen
    assert "envs.task_features" not in seen, sorted(seen)
    tree = ast.parse((ROOT / "policies/grounded_vla/end_to_end.py").read_text())
    assert not any("parse_mentions" in ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call))


# ---------------------------------------------------------------------- the language path


def _grounding_batch(model, n=16, seed=0):
    rng = np.random.default_rng(seed)
    episodes = _episodes("pick-place", 4)
    texts, tables, targets = [], [], []
    env = envs.make("pick-place", obs_mode="state")
    kinds = tuple(o.kind for o in env.objects)
    for i in range(n):
        obs, _ = env.reset(seed=i % 4)
        plan, names = episodes[i % 4]
        texts.append(describe("pick-place", plan, names, rng, "varied")[0])
        tables.append(identity_table(obs["object_state"], kinds)[0])
        targets.append(link_targets(plan_links([s.label for s in plan])))
    env.close()
    batch = {"tokens": model.encode(texts), "first_table": np.stack(tables)}
    batch |= {f"link_{k}": np.stack([t[k] for t in targets]) for k in TARGET_KEYS}
    return batch


def test_grounder_shapes_gradients_and_a_falling_loss():
    torch.manual_seed(0)
    model = LanguageGrounder(PRESETS["debug"])
    batch = _grounding_batch(model)
    out = model(torch.as_tensor(batch["tokens"]), torch.as_tensor(batch["first_table"]))
    assert out["obj"].shape == (16, 4, 18) and out["dest"].shape == (16, 4, 19)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < 0.5 * first
    # absent objects are never pointed at
    table = batch["first_table"][0]
    links = model.links(batch["tokens"][0], table)
    assert all(table[link.obj, 0] > 0 for link in links)


# ---------------------------------------------------------------------- train, save, load, act


@pytest.fixture(scope="module")
def vla_run(trained_bc):
    run = trained_bc("end-to-end")  # trained once a session (tests/conftest.py)
    return run.out, run.report


def test_vla_trains_loads_and_acts_blind_on_held_out_words(vla_run):
    """Whether the saved agent is the trained one: test_baselines.py's
    test_the_saved_agent_is_the_one_training_left_in_memory, for every kind."""
    out, report = vla_run
    final = report["rounds"][0]["final"]
    assert "val_instruction_accuracy" in final and "val_position_error_cm" in final
    bundle = load_bundle(out)
    assert bundle.kind == "end-to-end"
    env = envs.make("pick-place", cameras=CAMERAS, image_size=32, language="heldout-where")
    obs, info = env.reset(seed=7)
    agent = bundle.make(task="pick-place")
    trained = torch.load(out / "round_0" / "agent.pt", weights_only=False)
    assert set(trained["state"]) == set(bundle.policy.state_dict())
    agent.reset(info["instruction"])
    blind = {k: v for k, v in obs.items() if k != "object_state"}
    first = agent.act(blind)
    assert first.shape == (5,) and np.isfinite(first).all() and abs(first[4]) == 1.0
    assert agent.grounding and all(" " in g for g in agent.grounding)
    with pytest.raises(InstructionError, match="empty"):
        agent.reset("   ")
    with pytest.raises(InstructionError, match="at most"):
        agent.reset("put " * 200)
    env.close()
    make, overrides = agent_factory_from_run(out, "pick-place")
    result = evaluate(make, "pick-place", 2, seed=0, **overrides)
    assert result.episodes == 2 and 0.0 <= result.success_rate <= 1.0


def test_vla_weights_are_the_trained_ones(vla_run):
    """The loaded agent holds the weights training ended with, not the ones it started from
    (a fresh network seeded as training was) in its grounder and its perception."""
    out, _ = vla_run
    bundle = load_bundle(out)
    torch.manual_seed(0)  # the run's seed
    fresh = PRESETS["debug"].build(bundle.policy.image_keys, bundle.policy.image_size)
    loaded = bundle.policy.state_dict()
    changed = [k for k, v in fresh.state_dict().items() if not torch.equal(v, loaded[k])]
    assert any(k.startswith("decision.grounder") for k in changed)
    assert any(k.startswith("perception") for k in changed)
    assert Path(out / "agent.pt").exists()


# ---------------------------------------------------------------------- the hierarchical VLA


def test_system2_speaker_says_any_link_word_by_word():
    """The speaker learns to say links of any identities (random ones), and says links it was
    never trained on in the exact words System 1 was trained to read."""
    from policies.grounded_vla.speaker import (
        SPEAKER_WORDS,
        LinkSpeaker,
        link_code,
        random_link,
        said_ids,
        subtask_text,
    )

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    speaker = LinkSpeaker(32)
    opt = torch.optim.Adam(speaker.parameters(), lr=1e-2)
    for _ in range(300):
        links = [random_link(rng) for _ in range(64)]
        codes = torch.as_tensor(np.stack([link_code(k) for k in links]))
        said = torch.as_tensor(np.stack([said_ids(subtask_text(k)) for k in links]))
        logits = speaker(codes, said)
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), said.flatten(), ignore_index=0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    held = [random_link(np.random.default_rng(99)) for _ in range(20)]
    right = [speaker.say(k) == subtask_text(k) for k in held]
    assert np.mean(right) >= 0.9, [(speaker.say(k), subtask_text(k)) for k in held]
    assert all(w in SPEAKER_WORDS for k in held for w in speaker.say(k).split())


def test_system2_tracker_follows_the_links_done_in_the_scene():
    """The tracker, trained on demo steps (the link the expert works on, in the links'
    geometry), picks a later link once the earlier one is done."""
    from policies.grounded_vla.speaker import LinkTracker

    torch.manual_seed(0)
    episodes = _episodes("chain", 6)
    env = envs.make("chain", obs_mode="state")
    kinds = tuple(o.kind for o in env.objects)
    features, which = [], []
    for seed, (plan, _) in enumerate(episodes):
        obs, _ = env.reset(seed=seed)
        table = identity_table(obs["object_state"], kinds)[0]
        links = plan_links([s.label for s in plan])
        for k in range(len(links)):  # pretend the first k links are done: their objects placed
            done = table.copy()
            for link in links[:k]:
                if link.dest is not None:
                    done[link.obj, 1:3] = done[link.dest, 1:3]
                    done[link.obj, 3] = done[link.dest, 3] + (0.05 if link.dest % 3 == 0 else 0.02)
            proprio = obs["proprio"][None]
            f = features_of_links(done[None], proprio, table, links, "instruction")
            features.append(f[0])
            which.append(min(k, len(links) - 1))
    env.close()
    x, y = torch.as_tensor(np.stack(features)), torch.as_tensor(np.array(which))
    tracker = LinkTracker(64)
    opt = torch.optim.Adam(tracker.parameters(), lr=3e-3)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(tracker(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5
    assert (tracker(x).argmax(-1) == y).float().mean() >= 0.8


@pytest.fixture(scope="module")
def hierarchical_run(trained_bc):
    run = trained_bc("hierarchical")  # trained once a session (tests/conftest.py)
    return run.out, run.report


def test_hierarchical_vla_speaks_and_a_person_can_speak_in_its_place(hierarchical_run):
    out, report = hierarchical_run
    final = report["rounds"][0]["final"]
    assert {"val_system2_reading_accuracy", "val_system2_tracking_accuracy",
            "val_system2_saying_accuracy"} <= set(final)  # fmt: skip
    bundle = load_bundle(out)
    assert bundle.kind == "hierarchical"
    agent = bundle.make(task="pick-place")
    env = envs.make("pick-place", cameras=CAMERAS, image_size=32)
    obs, info = env.reset(seed=2)
    agent.inject(2, "grab the blue block and set it on the red mat")
    agent.reset(info["instruction"])
    said = []
    for _ in range(4):
        action = agent.act(obs)
        said.append(agent.subtask)
        obs, *_ = env.step(action)
    env.close()
    assert said[0].startswith("System 2: ") and said[2] == (
        "you: grab the blue block and set it on the red mat"
    )
    assert said[3] == said[2] or agent.system1.done(obs)  # a person's subtask holds until done
    assert agent.deliberation_ms and max(agent.deliberation_ms) < 1000
    with pytest.raises(InstructionError, match="empty"):
        agent.inject(0, " ")


def test_eval_subtask_needs_a_system2_that_reads_words(vla_run, tmp_path, capsys):
    from embodied.cli import main

    out, _ = vla_run
    argv = ["eval", "--agent", str(out), "--task", "pick-place", "--episodes", "1",
            "--out", str(tmp_path), "--subtask", "0:put the red cube on the blue pad"]  # fmt: skip
    assert main(argv) == 2
    assert "no System 2 that reads words" in capsys.readouterr().err
    assert main([*argv[:-2], "--subtask", "no-step"]) == 2
    assert "--subtask takes STEP:TEXT" in capsys.readouterr().err


def test_a_checkpoint_of_the_retired_pixel_fusion_family_says_so(tmp_path):
    from policies.bundles import load_agent
    from world_models.checkpoint import CheckpointError, save_checkpoint

    path = save_checkpoint(
        tmp_path / "agent.pt", "agent",
        {"agent": "end-to-end", "system1": {"config": {}}, "tokenizer": {"vocab": []}},
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="retired pixel-fusion family.*--kind end-to-end"):
        load_agent(path)


def test_the_oracle_says_each_link_in_the_episodes_language_split(hierarchical_run):
    """``eval --planner oracle --set language=heldout-where``: System 1 alone on held-out
    phrasings of its subtasks; in the templates' language, System 2's own words."""
    out, _ = hierarchical_run
    bundle = load_bundle(out)
    said = {}
    for split in ("all", "heldout-where"):
        env = envs.make("pick-place", cameras=CAMERAS, image_size=32, language=split)
        obs, info = env.reset(seed=4)
        env.close()
        agent = bundle.make(task="pick-place", planner="oracle")
        agent.reset(info["instruction"])
        agent.observe(info)
        agent.act(obs)
        said[split] = agent.subtask.removeprefix("oracle: ")
    assert said["all"].startswith("put the ") and " on the " in said["all"]
    assert " is where " in said["heldout-where"]


@pytest.mark.slow
def test_the_language_path_learns_words_it_never_saw():
    """A learning check (``scripts/test.sh -m slow``): the language path alone, trained on
    pick-place scenes in the training phenomena, reads held-out word orders and synonyms."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "language_grounding", ROOT / "benchmarks" / "language_grounding.py"
    )
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    probe.TASKS = ("pick-place",)
    report = probe.main(["--steps", "1500", "--train-scenes", "100", "--eval-episodes", "100"])
    accuracy = report["accuracy"]["pick-place"]
    assert accuracy["varied"] >= 0.85
    assert min(accuracy["heldout-passive"], accuracy["heldout-synonym"]) >= 0.7


@pytest.mark.parametrize("task", ["reach", "push", "pick-place", "stack", "chain"])
def test_counterfactual_meanings_keep_the_scene_and_the_grammar(task):
    from policies.grounded_vla.training import counterfactual_plan

    rng = np.random.default_rng(0)
    for plan, names in _episodes(task, 3):
        seen = set()
        for _ in range(20):
            other = counterfactual_plan(plan, names, rng)
            assert [s.verb for s in other] == [s.verb for s in plan]
            for s, t in zip(plan, other):
                for a, b in ((s.obj, t.obj), (s.dest, t.dest)):
                    assert (a is None) == (b is None)
                    if a is not None and "_" in a:  # an object: another of its kind, in the scene
                        assert b in names and a.split("_")[1] == b.split("_")[1]
                if s.verb == "place" and s.dest.endswith("_cube"):
                    assert t.dest != t.obj  # stacking: never a cube onto itself
            describe(task, other, names, rng, "varied")  # the generator can say it
            seen.add(tuple(map(str, other)))
        choices = any(sum(n.endswith("_" + k) for n in names) > 1 for k in ("cube", "pad", "target"))
        assert len(seen) > 1 or not choices  # the meanings change where the scene allows


def test_bench_language_measures_each_split_and_refuses_another_agents_results(
    vla_run, hierarchical_run, tmp_path
):
    from embodied.bench.language import bench_language

    out = tmp_path / "language.json"
    results = bench_language(vla_run[0], out, episodes=1, tasks=["pick-place"], num_envs=1)
    cells = results["cells"]["pick-place"]
    assert {"all", "varied", "heldout-passive", "heldout-synonym"} <= set(cells)
    assert all("of_in_distribution" in c for s, c in cells.items() if s.startswith("heldout-")
               and results["cells"]["pick-place"]["varied"]["success"])  # fmt: skip
    again = bench_language(vla_run[0], out, episodes=1, tasks=["pick-place"], num_envs=1)
    assert again["cells"] == results["cells"]  # resumed: nothing measured twice
    with pytest.raises(ValueError, match="measured on another agent"):
        bench_language(hierarchical_run[0], out, episodes=1, tasks=["pick-place"], num_envs=1)


def test_the_shipped_system2_says_each_chains_first_link_in_any_wording():
    """The shipped hierarchical VLA's System 2, on held-out seeds in the generator's wordings,
    says the link the chain starts with (its own words name the objects the env's plan names)."""
    from embodied.demo import SHIPPED_AGENTS
    from policies.grounded_vla.speaker import subtask_text

    make, overrides = agent_factory_from_run(SHIPPED_AGENTS / "hierarchical-six-tasks", "chain")
    right = []
    for seed in range(6):
        env = envs.make("chain", **{**overrides, "language": "varied"})
        obs, info = env.reset(seed=seed)
        agent = make(env, seed)
        agent.reset(info["instruction"])
        agent.act(obs)
        env.close()
        right.append(agent.words == subtask_text(plan_links(list(info["plan"]))[0]))
        assert agent.subtask.startswith("System 2: ")
    assert sum(right) >= 5, right
