"""pmg: personalised multimodal generation (PMG, WWW'24) on diffusers / transformers / peft.

The package follows the paper's Figure 2:
    behaviours -> keywords (LLM) -> soft embeddings -> conditioning (weighting) -> generation
    -> scoring/selection -> evaluation
Nothing heavy is imported here; import the stage you need, or ``pmg.api`` for the whole pipeline.
"""

__version__ = "0.1.0"
