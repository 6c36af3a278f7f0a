"""DeepSpeed fine-tuning: `deepspeed --module ochat.training_deepspeed.train ...` (see its docstring)."""
