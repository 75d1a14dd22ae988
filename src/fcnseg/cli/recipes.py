"""``fcnseg recipes``: list the shipped training recipes, or print one."""

from __future__ import annotations

import argparse

import yaml

from fcnseg.engine.config import (
    base_chain,
    config_to_dict,
    list_recipes,
    load_config,
    load_recipe,
    model_fields_not_taken,
    recipe_path,
)

NAME = "recipes"
HELP = ("List the training recipes shipped with fcnseg with the published score each should "
        "reach, or print one as YAML.")

#: Printed under the list; every ``--set`` in it works as typed (the tests run them).
USAGE = """\
train one:   fcnseg train --recipe synthetic-fcn8s --out runs/synthetic-fcn8s
change it:   fcnseg train --recipe folder-fcn8s --out runs/mine \\
                 --set data.train.root=data/mine data.val.root=data/mine optim.lr=0.001
resolved:    fcnseg recipes --show NAME   (its base applied; --raw: the file as shipped)
every field: fcnseg recipes NAME
values:      YAML, e.g. --set data.flip=false model.backbone_weights=null"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="print this recipe, resolved with every default")
    p.add_argument("--show", metavar="NAME",
                   help="print this recipe with its base chain applied, as YAML")
    p.add_argument("--raw", action="store_true", help="print the recipe file as shipped")


def run(args: argparse.Namespace) -> int:
    if args.show is not None:
        load_config(args.show)  # its fields checked as train checks them, naming the recipe
        bases = " <- ".join(base_chain(args.show))
        print(f"# {args.show}: " + (f"base {bases}" if bases else "no base"))
        print(yaml.safe_dump(load_recipe(args.show), sort_keys=False), end="")
        return 0
    if args.name is None:
        recipes = list_recipes()
        published = {name: load_recipe(name).get("published") or {} for name in recipes}
        scores = {name: published_score(published[name]) for name in recipes}
        width = max(len(n) for n in recipes)
        score_width = max(len(s) for s in scores.values())
        for name, description in recipes.items():
            print(f"{name:<{width}}  {scores[name]:<{score_width}}  {description}")
        print("\npublished: the mean IU reported for the recipe (- where none is published)")
        for name, block in published.items():
            if block.get("source"):
                also = f"; also {block['also']}" if block.get("also") else ""
                print(f"  {name}: {block['source']}{also}")
        print(f"\n{USAGE}")
        return 0
    if args.raw:
        print(recipe_path(args.name).read_text(encoding="utf-8"), end="")
    else:
        config = config_to_dict(load_config(args.name))
        for name in model_fields_not_taken(config["model"]["arch"]):
            del config["model"][name]  # at their defaults, which change nothing on this model
        print(yaml.safe_dump(config, sort_keys=False), end="")
    return 0


def published_score(published: dict | None) -> str:
    """``"63.6 mean IU (seg11valid)"`` from a recipe's ``published`` block; ``"-"`` without."""
    if not published or published.get("mean_iu") is None:
        return "-"
    split = f" ({published['split']})" if published.get("split") else ""
    return f"{float(published['mean_iu']):.1f} mean IU{split}"
