"""KD objectives: the training loss of a student given its teacher, one module each, registered in
`objectives.registry` and imported on first use. `kd` (METHODS.md's loss) is the default."""

from objectives.registry import OBJECTIVES, get_objective, list_objectives, register_objective

__all__ = ["OBJECTIVES", "get_objective", "list_objectives", "register_objective"]
