"""Student builders: how the model a run trains is made (from the teacher's layers, the teacher's
architecture with new weights, or a pre-trained encoder)."""
