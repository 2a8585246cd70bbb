"""`tessera new-provider NAME`: write a ready-to-install provider package from the templates.

The package has a src layout, the ``tessera.providers`` entry point, a factory, a working Relu
kernel registered with exact schema versions, a conformance test and a README.
"""

from __future__ import annotations

import keyword
import pathlib
import re
from importlib import resources

# template file -> path in the new package ({module} and {name} are filled in)
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/{module}/__init__.py",
    "plugin.py.tmpl": "src/{module}/plugin.py",
    "_factory.py.tmpl": "src/{module}/_factory.py",
    "kernels.py.tmpl": "src/{module}/kernels.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
    "test_provider.py.tmpl": "tests/test_{name}_provider.py",
}

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_RESERVED = {"cpu", "cuda", "opencl", "openvino", "tessera"}


class ScaffoldError(ValueError):
    """The name or output folder cannot be used; the message says what to do instead."""


def placeholders(name: str) -> dict[str, str]:
    """The values substituted into the templates for provider ``name``."""
    from tessera._provider import API_VERSION

    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"provider name {name!r} must be lower-case letters, digits and underscores, "
            "starting with a letter (for example: acme or acme_npu)"
        )
    if name in _RESERVED:
        raise ScaffoldError(
            f"provider name {name!r} is taken by a Tessera package; choose your own (e.g. acme)"
        )
    words = name.split("_")
    title = "".join(w[:1].upper() + w[1:] for w in words)
    return {
        "name": name,
        "module": f"tessera_{name}",
        "dist": f"tessera-{name.replace('_', '-')}",
        "Class": title,
        "alias": f"{title}ExecutionProvider",
        "api_version": API_VERSION,
        "core_version": "0.1",
    }


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.search(r"\{\{\w+\}\}", text)
    if leftover:  # a template names a placeholder this module does not fill: a bug here
        raise RuntimeError(f"unfilled template placeholder {leftover.group(0)}")
    return text


def scaffold(
    name: str, output: str | pathlib.Path | None = None, force: bool = False
) -> list[pathlib.Path]:
    """Write the package for provider ``name`` into ``output`` (default ``./tessera-NAME``).

    Returns the files written. Refuses a non-empty folder unless ``force`` is set.
    """
    values = placeholders(name)
    root = pathlib.Path(output) if output else pathlib.Path(values["dist"])
    if root.exists() and not root.is_dir():
        raise ScaffoldError(f"{root} exists and is not a folder; pass another --output")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise ScaffoldError(
            f"{root} is not empty; pass an empty or new folder as --output, or --force to overwrite"
        )
    source = resources.files("tessera").joinpath("templates").joinpath("provider")
    written = []
    for template, target in FILES.items():
        path = root / target.format(module=values["module"], name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(source.joinpath(template).read_text(encoding="utf-8"), values))
        written.append(path)
    return written


def cmd_new_provider(args) -> int:
    from tessera._errors import InvalidArgument

    try:
        written = scaffold(args.name, args.output, force=args.force)
    except ScaffoldError as exc:
        raise InvalidArgument(str(exc)) from None
    root = written[0].parent
    values = placeholders(args.name)
    print(f"wrote {len(written)} files for provider {args.name!r} into {root}:")
    for path in written:
        print(f"  {path.relative_to(root)}")
    print(
        "next:\n"
        f"  pip install -e {root}\n"
        f"  tessera providers                 # lists {values['alias']}\n"
        f"  pytest {root / 'tests'} --conformance-cases '^test_relu'"
    )
    return 0


def add_parser(sub) -> None:
    """Add the ``new-provider`` subcommand to the ``tessera`` CLI."""
    p = sub.add_parser(
        "new-provider",
        help="write a ready-to-install provider package (entry point, kernel, tests)",
    )
    p.add_argument("name", help="short provider name, e.g. acme (lower-case, digits, _)")
    p.add_argument(
        "--output", "-o", help="folder to write the package into (default ./tessera-NAME)"
    )
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.set_defaults(func=cmd_new_provider)
