"""The types of the expression language.

Every expression and every input field has one of these types. `T?` is the
nullable variant of T: a value that may be missing in the data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Type:
    """A type of the expression language; compare with ``==``."""

    name: str
    nullable: bool = False
    item: Type | None = None  # element type of a list

    def __str__(self) -> str:
        text = f"list[{self.item}]" if self.name == "list" else self.name
        return text + ("?" if self.nullable else "")

    def as_nullable(self) -> Type:
        return Type(self.name, True, self.item)

    def as_required(self) -> Type:
        return Type(self.name, False, self.item)


BOOL = Type("bool")
INT = Type("int")
DECIMAL = Type("decimal")
MONEY = Type("money")
STRING = Type("string")
DATE = Type("date")
DATETIME = Type("datetime")
DURATION = Type("duration")
NULL = Type("null", nullable=True)


def list_of(item: Type) -> Type:
    return Type("list", item=item)


# Names a policy may use in its input schema (`amount: money`, `phone: string?`).
SCALARS: dict[str, Type] = {
    t.name: t for t in (BOOL, INT, DECIMAL, MONEY, STRING, DATE, DATETIME, DURATION)
}

NUMERIC = frozenset({"int", "decimal", "money"})


def parse_type_name(text: str) -> Type | None:
    """`"money"` -> MONEY, `"string?"` -> nullable STRING, `"list[string]"`.

    Returns None for a name that is not a type.
    """
    nullable = text.endswith("?")
    core = text[:-1] if nullable else text
    if core.startswith("list[") and core.endswith("]"):
        item = parse_type_name(core[5:-1])
        result = list_of(item) if item is not None else None
    else:
        result = SCALARS.get(core)
    if result is None:
        return None
    return result.as_nullable() if nullable else result
