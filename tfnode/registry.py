"""Name-keyed registries of strategies (solvers, gradient methods).

One registry per kind; `odeint`, the Keras layers and the `train.py` flags all
look strategies up here, so their choices never drift apart.
"""

__all__ = ["Registry"]


class Registry:
    """Maps names (and aliases) to strategy objects.

    Args:
        kind: What is registered, used in error messages (e.g. `"solver"`).
        argument: The argument users pass names through (e.g. `"solver"`).
    """

    def __init__(self, kind, argument):
        self.kind = kind
        self.argument = argument
        self._entries = {}
        self._aliases = {}

    def register(self, name, entry, aliases=()):
        """Registers `entry` under `name` and its `aliases`; returns it."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered.")
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def names(self, aliases=True):
        """The registered names, sorted, with the aliases unless told not."""
        keys = list(self._entries)
        if aliases:
            keys += list(self._aliases)
        return sorted(keys)

    def types(self):
        """The types of the registered entries, a tuple."""
        return tuple({type(entry) for entry in self._entries.values()})

    def name_of(self, entry):
        """The registered name of `entry`, or `None` when `entry` is not
        one of the registered objects (compared by equality)."""
        for name, registered in self._entries.items():
            if registered == entry:
                return name
        return None

    def canonical_name(self, name):
        """The registered name that `name` (maybe an alias) stands for."""
        self.get(name)
        return self._aliases.get(name, name)

    def get(self, identifier):
        """Returns the entry named `identifier`, or `identifier` itself when
        it is an instance of a registered entry's type (a configured
        gradient method, or a user's own `ExplicitRungeKutta(tableau)`).

        Raises:
            ValueError: naming the argument and the allowed values, when
                `identifier` is not registered.
        """
        if isinstance(identifier, str):
            name = self._aliases.get(identifier, identifier)
            if name in self._entries:
                return self._entries[name]
        elif isinstance(identifier, self.types()):
            return identifier
        raise ValueError(
            f"Unknown {self.kind} {self.argument}={identifier!r}; choose one "
            f"of: {', '.join(self.names())}."
        )
