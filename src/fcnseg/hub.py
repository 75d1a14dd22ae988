"""Share and reuse trained models: pretrained folders, the Hugging Face Hub, ``hf://`` specs.

``save_pretrained(model_or_checkpoint, folder)`` writes ``config.json`` and
``model.safetensors``; ``from_pretrained("user/repo" | folder)`` builds the model back;
``push_to_hub(model_or_checkpoint, "user/repo")`` uploads. The Hub parts need the ``hub`` extra
(``pip install 'fcnseg[hub]'``).
"""

from fcnseg.pretrained.hub import (
    HubError,
    from_pretrained,
    push_to_hub,
    resolve_checkpoint,
    save_pretrained,
)

__all__ = ["HubError", "from_pretrained", "push_to_hub", "resolve_checkpoint", "save_pretrained"]
