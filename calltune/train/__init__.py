"""Fine-tuning: LoRA / DoRA / QLoRA / full on PyTorch, LoRA on MLX.

Modules, one idea each (after mlx-lm's tuner/):
    datasets.py     canonical examples -> token ids + completion mask; cut report; length-grouped batches
    loss.py         completion-only loss: LM head at target rows only; shared prompt head packed once
    prefix_attention.py  that packed row's attention on CPU: the head, then the tails as a batch
    lora.py         load the base and make it trainable (PEFT LoRA/DoRA/QLoRA, or full); save
    schedule.py     warmup + cosine learning rate as a pure function of the step
    checkpoint.py   safetensors + JSON checkpoints for exact resume
    trainer.py      the loop: AdamW, accumulation, clipping, eval, early stopping, keep-best, reports
    callbacks.py    what a run reports while it trains (mlx-lm's TrainingCallback protocol) and the
                    dvclive logger both backends use
    distributed.py  data parallel under torchrun: each process's share of a step, the all-reduce, ZeRO-1
    device.py       backend / device / dtype resolution, seeding
    session.py      what both backends share: paths, tokenized splits, the summary schema, the output write
    mlx_backend.py  the same data, mask and schedule through mlx-lm's trainer; PEFT-form output
    run.py          the train stage end to end (stages/train.py is its CLI)

Output contract (models/adapter/): adapter_model.safetensors + adapter_config.json in PEFT's form
for lora/dora/qlora and for the MLX backend; for method full, the whole model (config.json +
model.safetensors). training_summary.json beside them records params, data, cuts and losses, with
the same keys whichever backend trained (session.TrainingSummary).
"""
