"""resolvelib's search, told apart by whether its "impossible" can be trusted.

resolvelib 1.x backjumps: on a conflict it may drop several pins at once, skipping states whose candidate's
dependencies do not touch the conflict. That can skip the one decision that would have resolved it, so a
search that skipped ends with ``ResolutionImpossible`` for problems that have a solution (resolvelib issue
#206). A search that never skipped backtracked chronologically (the last pin only, which resolvelib 0.x
always did): each candidate it ruled out was ruled out under the pins before it, so its "impossible" holds.

:class:`Search` runs resolvelib's algorithm unchanged and records whether it ever skipped; with
``chronological=True`` it never does, at the price of more rounds on hard conflicts.
"""

from __future__ import annotations

from resolvelib import ResolutionImpossible
from resolvelib.resolvers.resolution import Resolution

#: Entries of a search's (criterion, pin) memo before it is emptied (each holds two live objects).
MAX_SATISFYING_MEMO = 200_000


class Search(Resolution):
    """One resolvelib search; ``skipped`` says whether its backjumping dropped more than the last pin."""

    def __init__(self, provider, reporter, *, chronological: bool = False) -> None:
        super().__init__(provider, reporter)
        self.chronological = chronological
        #: Whether some backjump dropped more than the last pin: an end in ``ResolutionImpossible`` is then
        #: not a proof.
        self.skipped = False
        self._pushed = 0
        #: (id(criterion), id(pin)) -> (criterion, pin, satisfied): see :meth:`_is_current_pin_satisfying`.
        self._satisfying: dict[tuple[int, int], tuple[object, object, bool]] = {}
        if chronological:
            self._optimistic_backjumping_ratio = 0.0

    def _is_current_pin_satisfying(self, name, criterion) -> bool:
        """resolvelib asks this of every criterion on every round (O(rounds x criteria x requirements) calls of
        ``is_satisfied_by``, a third of a warm resolution of a hundred projects); criteria are immutable and
        replaced when their requirements change, so the answer is remembered per (criterion, pin) object pair.
        The memo holds both objects, so neither id is reused while its entry exists; it is dropped when large."""
        pin = self.state.mapping.get(name)
        if pin is None:
            return False
        key = (id(criterion), id(pin))
        held = self._satisfying.get(key)
        if held is not None and held[0] is criterion and held[1] is pin:
            return held[2]
        answer = super()._is_current_pin_satisfying(name, criterion)
        if len(self._satisfying) >= MAX_SATISFYING_MEMO:
            self._satisfying.clear()
        self._satisfying[key] = (criterion, pin, answer)
        return answer

    def _push_new_state(self) -> None:
        self._pushed += 1
        super()._push_new_state()

    def _remove_information_from_criteria(self, criteria, parents) -> None:
        """resolvelib drops the requirements of pins that a new pin's requirements no longer allow; the pins
        themselves are dropped too, so that they are pinned again (with their requirements) before the search
        ends. Kept, a pin could come to satisfy its criterion again (when the requirement it broke goes with
        another dropped pin) and end in the answer without its requirements: an answer that breaks them."""
        super()._remove_information_from_criteria(criteria, parents)
        for name in parents:
            self.state.mapping.pop(name, None)

    def _backjump(self, causes) -> bool:
        if self.chronological:
            return self._backtrack(causes)
        # Each step of resolvelib's loop drops the failed state, drops one or more pinned states and pushes
        # one: more states dropped than pushed (the failed ones aside) means a pinned state was skipped.
        states, pushed = len(self._states), self._pushed
        try:
            return super()._backjump(causes)
        finally:
            steps = self._pushed - pushed
            if states - len(self._states) > steps:
                self.skipped = True

    def _backtrack(self, causes) -> bool:
        """Chronological backtracking: undo the last pin, rule its candidate out, and so on while that empties
        some candidate list (resolvelib's ``_backjump`` without the jump)."""
        while len(self._states) >= 3:
            del self._states[-1]
            broken = self._states.pop()
            try:
                name, candidate = broken.mapping.popitem()
            except KeyError:
                raise ResolutionImpossible(causes) from None
            incompatibilities = [(k, list(v.incompatibilities)) for k, v in broken.criteria.items()]
            incompatibilities.append((name, [candidate]))
            self._push_new_state()
            if self._patch_criteria(incompatibilities):
                return True
        return False
