"""The configuration: presets, overrides, and errors that name the key."""

import re

import pytest

from pathlib import Path

from infaug.config import METHODS, RETIRED, RETIRED_AT, Config, differing_keys, flat, load_config, load_preset, preset_names

ROOT = Path(__file__).resolve().parents[1]


def test_presets_load_and_differ_where_they_should():
    assert {"default", "toy2d", "mnist-1pct", "mnist-10pct"} <= set(preset_names())
    default = load_preset("default")
    assert default == Config().replace({"preset": "default"})  # the default preset is the defaults
    assert default.run.methods == METHODS and default.data.labelled == 500 and default.data.validation == 100
    one, ten = load_preset("mnist-1pct"), load_preset("mnist-10pct")
    assert (one.data.dataset, one.data.labelled, one.data.validation) == ("mnist", 600, 100)
    assert (ten.data.labelled, ten.data.validation) == (6000, 1000)
    toy = load_preset("toy2d")
    assert toy.classifier.arch == "mlp" and "randaugment" not in toy.run.methods
    # the default preset's proposed is the MNIST presets' method: E's step judged by F's round per factor
    assert default.encoder.shrink == one.encoder.shrink == ten.encoder.shrink and len(default.encoder.shrink) > 1


def test_overrides_parse_strings_from_the_command_line():
    config = load_preset("default").replace({"classifier.epochs": "7", "classifier.lr": "0.5", "run.seeds": "1,2,3", "run.methods": "none,proposed"})
    assert config.classifier.epochs == 7 and config.classifier.lr == 0.5
    assert config.run.seeds == (1, 2, 3) and config.run.methods == ("none", "proposed")
    assert Config.from_dict(config.to_dict()) == config  # the written configuration reloads to the same


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"classifier.epoch": 3}, KeyError, "unknown key 'classifier.epoch'; allowed: classifier.arch"),
        ({"nonsense.x": 3}, KeyError, "unknown key 'nonsense'"),
        ({"classifier.epochs": "many"}, TypeError, "classifier.epochs must be int, got 'many'"),
        ({"classifier.epochs": 2.5}, TypeError, "classifier.epochs must be int, got 2.5"),
        ({"classifier.epochs": 0}, ValueError, "classifier.epochs must be >= 1, got 0"),
        ({"generator.smooth": 4}, ValueError, "generator.smooth must be a positive odd integer, got 4"),
        ({"data.validation": 600}, ValueError, "data.labelled must be > data.validation = 600, got 500"),
        ({"run.methods": "none,magic"}, ValueError, "run.methods must be a non-empty list from none"),
        ({"run.device": "tpu"}, ValueError, "run.device must be 'auto', 'cpu' or 'cuda"),
        ({"heuristic.rotation": -1.0}, ValueError, "AffineRanges.rotation must be a finite number >= 0"),
        ({"heuristic.strength": -0.5}, ValueError, "AffineRanges.strength must be a finite number >= 0, got -0.5"),
        ({"generator.temperature": 0.0}, ValueError, "generator.temperature must be a finite number > 0, got 0.0"),
        ({"kornia.trivialaugment_scale": 1.5}, ValueError, "kornia.trivialaugment_scale must be in (0, 1], got 1.5"),
        ({"encoder.shrink": "0,1.5"}, ValueError, "encoder.shrink must be a non-empty list of factors in [0, 1], got [0.0, 1.5]"),
        ({"encoder.shrink": []}, ValueError, "encoder.shrink must be a non-empty list of factors in [0, 1], got []"),
        ({"encoder.shrink": "0,1,1"}, ValueError, "encoder.shrink must be a list without repeats, got [0.0, 1.0, 1.0]"),
    ],
)
def test_bad_values_name_the_key(overrides, error, message):
    with pytest.raises(error, match=re.escape(message)):
        load_preset("default").replace(overrides)


@pytest.mark.parametrize("key, value", [("encoder.influence", "network"), ("encoder.influence", "unrolled"),
                                        ("encoder.judge_horizon", "end"), ("encoder.train_at", "end"),
                                        ("loop.round_candidates", 4)])
def test_a_retired_experiment_is_refused_naming_its_record(key, value):
    today = RETIRED[key]
    with pytest.raises(ValueError, match=re.escape(f"override: {key} = {value!r} was an experiment, retired (docs/experiments.md")
                       + f".*commit {RETIRED_AT}.*infaug now runs as {re.escape(key)} = {re.escape(repr(today))}"):
        load_preset("default").replace({key: value})
    assert (ROOT / "docs" / "experiments.md").exists()


def test_a_retired_key_at_today_s_behaviour_loads_and_compares_as_absent():
    # Every run's config.json made before the retirement holds the retired keys at these values.
    old = Config().to_dict()
    old["encoder"].update(shrink_judge="round", judge_horizon="round", train_at="rounds", influence="last_layer",
                          network_damping=0.3, network_iterations=30, unroll_steps=3, unroll_lr=0.01)
    old["loop"]["round_candidates"] = 1
    assert Config.from_dict(old) == Config() and differing_keys(old, Config().to_dict()) == set()
    # The last layer's judge of several factors is gone, so such a run differs; with one factor it did nothing.
    last_layer = {**old, "encoder": {**old["encoder"], "shrink_judge": "last_layer"}}
    assert differing_keys(last_layer, Config().to_dict()) == {"encoder.shrink_judge"}
    with pytest.raises(ValueError, match="encoder.shrink_judge = 'last_layer' was an experiment, retired"):
        Config.from_dict(last_layer)
    one = {**last_layer, "encoder": {**last_layer["encoder"], "shrink": [1.0]}}
    assert Config.from_dict(one) == Config().replace({"encoder.shrink": [1.0]})
    assert differing_keys(one, Config().to_dict()) == {"encoder.shrink"}
    # A retired key at another value differs from a configuration that lacks it (e.g. on --resume).
    assert differing_keys({"encoder": {"judge_horizon": "end"}}, {}) == {"encoder.judge_horizon"}


def test_flat_gives_the_dotted_keys_replace_takes():
    config = Config()
    values = flat(config.to_dict())
    assert values["classifier.epochs"] == config.classifier.epochs and values["preset"] == ""
    assert len(values) == sum(len(v) if isinstance(v, dict) else 1 for v in config.to_dict().values())
    changed = {"classifier.epochs": 7, "encoder.shrink": [0.0, 1.0]}
    assert flat(config.replace(changed).to_dict()) == {**values, **changed}


def test_config_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[classifier]\nepochs = 5\n[encoder]\nnoise = 0.5\n')
    config = load_config(path)
    assert config.classifier.epochs == 5 and config.encoder.noise == 0.5
    path.write_text('[classifier]\nepochs = "five"\n')
    with pytest.raises(TypeError, match=f"{path}: classifier.epochs must be int"):
        load_config(path)
    with pytest.raises(ValueError, match="preset must be one of"):
        load_preset("nope")


def test_config_file_errors_name_the_file_the_key_and_the_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[classifier]\nepochs = 3\nlr = \n")
    with pytest.raises(ValueError, match=r"bad.toml: not valid TOML: .*line 3"):
        load_config(path)
    path.write_text("[classifier]\nepoch = 3\n")
    with pytest.raises(KeyError, match=r"bad.toml: unknown key 'classifier.epoch'; allowed: classifier.arch"):
        load_config(path)
    path.write_text("[run]\ncheckpoint_every = -1\n")
    with pytest.raises(ValueError, match=r"run.checkpoint_every must be a finite number of seconds >= 0, got -1.0"):
        load_config(path)
    with pytest.raises(ValueError, match=r"config file .*missing.toml not found"):
        load_config(tmp_path / "missing.toml")


def test_every_preset_writes_toml_that_reads_back_equal(tmp_path):
    from infaug.config import preset_names

    for name in preset_names():
        config = load_preset(name).replace({"run.seeds": "3,4", "heuristic.rotation": 0.125})
        path = tmp_path / f"{name}.toml"
        path.write_text(config.to_toml())
        assert load_config(path) == config, name


def test_cli_config_file_with_overrides(tmp_path, monkeypatch):
    from infaug.cli import main

    seen = {}
    monkeypatch.setattr("infaug.run.run", lambda config, out, resume=False: seen.update(config=config, out=out, resume=resume))
    path = tmp_path / "mine.toml"
    path.write_text('[classifier]\nepochs = 5\n[run]\nmethods = ["none", "proposed"]\n')
    main(["run", "--config", str(path), "--set", "classifier.lr=0.01", "--seeds", "2"])
    config = seen["config"]
    assert config.classifier.epochs == 5 and config.classifier.lr == 0.01 and config.run.seeds == (2,)
    assert config.run.methods == ("none", "proposed") and config.preset == "mine.toml" and str(seen["out"]) == "runs/mine"
    main(["run", "--preset", "mnist-1pct", "--config", str(path)])  # the file over the preset
    assert seen["config"].data.dataset == "mnist" and seen["config"].classifier.epochs == 5
    with pytest.raises(SystemExit, match=r"infaug run: .*mine.toml: classifier.epochs must be int, got 'x'"):
        path.write_text('[classifier]\nepochs = "x"\n')
        main(["run", "--config", str(path)])
