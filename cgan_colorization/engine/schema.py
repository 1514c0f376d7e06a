"""The one schema of every command line (pix2pix's `BaseOptions`, big_vision's config files).

An option is a dataclass field made by `option`: its type and default are the field's, its help, range
or choices and flag spelling live in the field's metadata. `build_parser` generates a script's parser
from the dataclass, and `OptionParser.parse` resolves its values, each layer overriding the one before:

    field defaults < preset (configs/fast.json, configs/paper.json) < --config FILE (JSON) < flags given

A run folder's own `config.json` is such a file, so `--config RUN/config.json` re-runs the run; the
facts it records beside its options (`recorded`) are accepted and left aside. An unknown key, a value
of the wrong type or out of range stops the script in one sentence with exit status 2.
"""

import argparse
import dataclasses
import difflib
import functools
import json
import os
import sys

# The presets and studies (configs/*.json): the repository's folder in a checkout or an editable install,
# the copy setup.cfg's data_files puts under the environment's prefix in an installed wheel.
CONFIG_FOLDERS = (os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "configs"),
                  os.path.join(sys.prefix, "share", "cgan-colorization", "configs"))


def config_file(name):
    """The path of configs/NAME.json: in the first of `CONFIG_FOLDERS` that holds it (the repository's
    folder when it holds none, for the error to name)."""
    paths = [os.path.normpath(os.path.join(folder, f"{name}.json")) for folder in CONFIG_FOLDERS]
    return next((path for path in paths if os.path.isfile(path)), paths[0])
PRESET_NAMES = ("fast", "paper")  # configs/NAME.json; 'fast' applies unless another is named
PRESET_HELP = ("'fast' runs on a CPU in minutes; 'paper' sets every value of the paper (configs/fast.json, "
               "configs/paper.json)")
CONFIG_HELP = ("JSON file of option values, e.g. a study's file in configs/ or a run folder's config.json (which "
               "re-runs that run); flags given beside it override single values")
ABOUT = "about"  # the key of a config file's description, which sets nothing


@dataclasses.dataclass(frozen=True)
class Range:
    """Valid values of a numeric option: low <= value <= high (strict where `*_open`)."""

    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False

    def describe(self):
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high}")
        return " and ".join(parts)

    def contains(self, value):
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def bounded(kind, valid):
    """An argparse type: `kind` (int or float) within the `Range` `valid`, else one sentence."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"received {text!r}") from None
        if value != value or not valid.contains(value):  # NaN, or out of range
            raise argparse.ArgumentTypeError(f"must be {valid.describe()}, received {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def comma_separated(kind, valid, allow_empty=False, sort=True):
    """An argparse type: comma-separated values, each a `bounded(kind, valid)` one (so a bad value is
    one sentence); sorted without repeats unless `sort` is False, and non-empty unless `allow_empty`."""
    element = bounded(kind, valid)

    def parse(text):
        values = [element(item) for item in text.split(",") if item]
        if not values and not allow_empty:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, received {text!r}")
        return tuple(sorted(set(values))) if sort else tuple(values)

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def comma_subset(choices):
    """An argparse type: a non-empty comma-separated subset of `choices`, as a tuple in the order given
    (a name outside them is one sentence)."""
    def parse(text):
        names = tuple(n for n in text.split(",") if n)
        if not names or any(n not in choices for n in names):
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(choices)}, "
                                             f"received {text!r}")
        return names

    parse.__name__ = "comma-separated names"
    return parse


def option(default=None, help="", valid=None, choices=None, parse=None, flag=None, aliases=(), metavar=None,
           positional=False, repeat=False, required=False):
    """A dataclass field that is a command-line option.

    Args:
        default: its value when neither a preset, a config file nor a flag gives one.
        help: what it means (the parser adds each preset's value).
        valid: a `Range` for a number; choices: the values a text option takes.
        parse: text -> value, for a value written as text (e.g. comma-separated); a list in a config
            file is joined with commas first.
        flag: its flag when not `--field-name`; aliases: older spellings, still parsed, not shown.
        positional: an argument without a flag (any number of them); repeat: a flag given once per value.
        required: the run stops when no layer gives it a value.
    """
    return dataclasses.field(default=default, metadata=dict(
        help=help, valid=valid, choices=choices, parse=parse, flag=flag, aliases=tuple(aliases), metavar=metavar,
        positional=positional, repeat=repeat, required=required))


def _meta(field):
    return field.metadata if "help" in field.metadata else dict(option().metadata)


@functools.lru_cache(maxsize=None)
def _preset_file(name):
    path = config_file(name)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: the presets are read from the repository's configs/ "
                                f"folder, or from {CONFIG_FOLDERS[1]} where the package is installed.") from None


def preset(name, section):
    """{option: value} that preset `name` (configs/NAME.json) gives the options of `section` ("colorizer",
    "classification", "segmentation", "reproduce", "scaling"); {} where it sets none."""
    return {key: value for key, value in _preset_file(name).get(section, {}).items() if key != ABOUT}


def presets_of(section):
    """The preset names whose file has a `section`, in `PRESET_NAMES` order."""
    return tuple(name for name in PRESET_NAMES if section is not None and section in _preset_file(name))


def preset_values(name, schema):
    """The values of preset `name` for `schema`'s options, each read as a config file's would be."""
    fields = {f.name: f for f in dataclasses.fields(schema.cls)}
    values = {}
    for key, value in preset(name, schema.section).items():
        if key not in fields:
            raise ValueError(f'{config_file(name)}: section "{schema.section}" sets "{key}", '
                             f'which is no option of it (nearest: "{nearest(key, fields)}").')
        values[key] = check_value(fields[key], value, nullable=True)
    return values


def _shown(value):
    if value is None:
        return "unset"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def _flag_type(field, meta):
    if meta["parse"]:
        return meta["parse"]
    kind = field.type if isinstance(field.type, type) else str
    if kind in (int, float) and meta["valid"] is not None:
        return bounded(kind, meta["valid"])
    return str if kind is tuple else kind  # a repeated flag or a positional: one text per value


def _add_alias(parser, alias, dest, **kwargs):
    """An older spelling of a flag that still works but is not shown by --help."""
    parser.add_argument(alias, dest=dest, help=argparse.SUPPRESS, **kwargs)


class OptionParser(argparse.ArgumentParser):
    """The parser of one options dataclass; `parse` returns an instance of it."""

    def parse(self, argv=None):
        """The options of `argv` (default: the command line), resolved as the module docstring says."""
        return self.resolve(self.parse_args(argv))

    def resolve(self, args):
        """The options of parsed `args`: field defaults < preset < `--config` file < flags given."""
        schema = self.schema
        values = {f.name: f.default for f in dataclasses.fields(schema.cls)}
        given = read_config(args.config, schema, self.prog) if getattr(args, "config", None) else {}
        if schema.presets:
            named = given.pop("preset", None)
            name = getattr(args, "preset", None) or named or schema.presets[0]
            values.update(preset_values(name, schema))
            if "preset" in values:  # an options class that passes its preset on keeps its name
                values["preset"] = name
        values.update(given)
        for name in values:
            flagged = getattr(args, name, None)
            if flagged is not None and flagged != []:
                values[name] = tuple(flagged) if isinstance(flagged, list) else flagged
        values.update(schema.fixed)
        missing = [_spelling(f) for f in dataclasses.fields(schema.cls)
                   if _meta(f)["required"] and values[f.name] in (None, (), "")]
        if missing:
            _refuse(self.prog, f"the following arguments are required: {', '.join(missing)} (on the command line or "
                               "in a --config file).")
        return schema.cls(**values)


@dataclasses.dataclass(frozen=True)
class Schema:
    cls: type
    section: str
    presets: tuple
    exclude: tuple
    fixed: dict
    recorded: tuple


def _spelling(field):
    meta = _meta(field)
    return field.name if meta["positional"] else meta["flag"] or "--" + field.name.replace("_", "-")


def build_parser(description, config_cls, section=None, exclude=(), fixed=None, raw_description=False):
    """An `OptionParser` with `--config`, `--preset` where configs/ holds presets of `section`, and one
    flag per field of the `config_cls` dataclass (none for `exclude`d ones, nor for `fixed` ones, whose
    values are given). Every flag defaults to 'take it from the layer below', refuses a value outside the
    field's range or choices, and its help shows each preset's value. What a run folder's config.json
    records beside the options (the class's `RECORDED` names) is accepted and left aside by `--config`."""
    fixed = dict(fixed or {})
    names = presets_of(section)
    parser = OptionParser(description=description,
                          formatter_class=argparse.RawDescriptionHelpFormatter if raw_description
                          else argparse.HelpFormatter)
    parser.schema = Schema(config_cls, section, names, tuple(exclude), fixed, getattr(config_cls, "RECORDED", ()))
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    if len(names) > 1:
        parser.add_argument("--preset", choices=names, help=f"{PRESET_HELP} (default {names[0]})")
    for field in dataclasses.fields(config_cls):
        if field.name in exclude or field.name in fixed or (field.name == "preset" and names):
            continue
        meta = _meta(field)
        values = {name: preset(name, section).get(field.name, field.default) for name in names} \
            or {"default": field.default}
        shown = ", ".join(f"{name} {_shown(value)}" for name, value in values.items()) \
            if len(set(map(repr, values.values()))) > 1 else f"default {_shown(next(iter(values.values())))}"
        helptext = f"{meta['help']} ({shown})".replace("%", "%%")
        if meta["positional"]:
            parser.add_argument(field.name, nargs="*", type=_flag_type(field, meta), help=helptext)
            continue
        flag = _spelling(field)
        if field.type is bool or isinstance(field.default, bool):
            if field.name.startswith("no_"):  # a switch that is already a negation: no --no-no-... twin
                kwargs = dict(action="store_const", const=True)
            else:
                kwargs = dict(action=argparse.BooleanOptionalAction)
        else:
            kwargs = dict(type=_flag_type(field, meta), choices=meta["choices"] or None)
            if meta["repeat"]:
                kwargs["action"] = "append"
            if kwargs["choices"] is None:  # named after the flag, also when it is renamed
                kwargs["metavar"] = meta["metavar"] or flag[2:].upper().replace("-", "_")
        parser.add_argument(flag, dest=field.name, default=None, help=helptext, **kwargs)
        for alias in meta["aliases"]:
            _add_alias(parser, alias, field.name, **kwargs)
    return parser


def nearest(key, valid):
    """The valid name nearest to `key` (difflib's ratio), or None when there are none."""
    found = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.0)
    return found[0] if found else None


def _refuse(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _describe(field, meta):
    if meta["choices"]:
        return f"one of {', '.join(map(str, meta['choices']))}"
    kind = field.type if isinstance(field.type, type) else str
    what = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            tuple: "a list"}.get(kind, kind.__name__)
    return what + (f" {meta['valid'].describe()}" if meta["valid"] is not None else "")


def check_value(field, value, nullable=False):
    """`value` of a config file as the option `field` takes it (a list for a comma-separated or repeated
    option), or a ValueError whose text ends the sentence "KEY ...": what it must be and what it was."""
    meta = _meta(field)
    kind = field.type if isinstance(field.type, type) else str
    received = f"received {json.dumps(value)}"
    if value is None:
        if nullable or field.default is None:
            return None
        raise ValueError(f"must be {_describe(field, meta)}, {received}")
    if meta["parse"]:
        text = ",".join(map(str, value)) if isinstance(value, list) else value
        if isinstance(text, str) or (isinstance(text, (int, float)) and not isinstance(text, bool)):
            try:
                return meta["parse"](str(text))
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"is refused: {error}") from None
        raise ValueError(f"must be text or a list, {received}")
    if kind is bool or isinstance(field.default, bool):
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is tuple:
        ok = isinstance(value, list)
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok or (meta["valid"] is not None and (value != value or not meta["valid"].contains(value))) or \
            (meta["choices"] and value not in meta["choices"]):
        raise ValueError(f"must be {_describe(field, meta)}, {received}")
    return value


def read_config(path, schema, prog="the script"):
    """{option: value} of the JSON config file at `path` (or `path`/config.json for a run folder), each
    value checked; anything else stops the script in one sentence (exit status 2)."""
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    try:
        with open(path) as f:
            values = json.load(f)
    except FileNotFoundError:
        _refuse(prog, f"--config {path} does not exist: give a JSON file such as configs/fast.json's sections "
                      "or a run folder's config.json.")
    except (OSError, ValueError) as error:
        _refuse(prog, f"--config {path} is not readable JSON ({error}).")
    if not isinstance(values, dict):
        _refuse(prog, f"--config {path} must hold one JSON object of option names and values.")
    fields = {f.name: f for f in dataclasses.fields(schema.cls) if f.name not in schema.exclude}
    nullable = {f for name in schema.presets for f, v in preset(name, schema.section).items() if v is None}
    checked = {}
    for key, value in values.items():
        if key == ABOUT or key in schema.recorded:
            continue
        if key == "preset" and schema.presets:
            if value not in schema.presets:
                _refuse(prog, f'"preset" in {path} must be one of {", ".join(schema.presets)}, received {value!r}.')
            checked[key] = value
        elif key in schema.fixed:
            if value != schema.fixed[key]:
                _refuse(prog, f'{path} is for {key} {value!r}, not {schema.fixed[key]!r}: give it to that '
                              f"{key}'s script.")
        elif key not in fields:
            valid = set(fields) - set(schema.fixed) | ({"preset"} if schema.presets else set())
            _refuse(prog, f'unknown key "{key}" in {path}: did you mean "{nearest(key, valid)}"?')
        else:
            try:
                checked[key] = check_value(fields[key], value, key in nullable)
            except ValueError as error:
                _refuse(prog, f'"{key}" in {path} {error}.')
    return checked
