"""On-device agents: shared models with per-agent LoRA, private context, ad scoring, DP training.

Example:
    >>> from agents import Ad, Agent, load_model
    >>> agent = Agent(load_model("tiny-encoder"))
    >>> _ = agent.context.add("purchase", "trail running shoes", time=0.0)
    >>> agent.choose_ad([Ad("a1", "running shoes", 1.0)], reserve=0.5).winner
    'a1'
"""

from . import accountant, distill, privacy, prompts
from ._errors import AgentError, BudgetExhaustedError, ModelNotFoundError
from .accountant import UserAccountant
from .agent import Ad, Agent, Decision, LocalUpdate
from .context import Budget, Event, Impression, PrivateContext
from .distill import (
    DistillConfig,
    DistillResult,
    Student,
    distill_federated,
    loglik_teacher,
    lora_teacher,
    public_contexts,
)
from .explain_text import explain_in_words
from .llm_bidder import LLMBidPolicy, llm_bidder
from .loglik_scoring import loglik_ctr, relevance
from .lora import (
    StateTable,
    adapter_state,
    enable_lora,
    load_state,
    save_state,
    state_nbytes,
    state_version,
    target_modules,
)
from .metrics import ndcg_at_k, precision_at_k
from .models import Backbone, builtin_names, detect_kind, load_model
from .negotiation import NegotiationSummary, negotiate_many, run_negotiation
from .negotiation_protocol import Scenario, nash_price, rubinstein_share
from .negotiators import LLMNegotiator, RuleNegotiator
from .privacy import epsilon, noise_multiplier_for, randomized_response
from .scoring import Explanation, predict_ctr
from .training import Plan, TrainResult, plan, train

__all__ = [
    "Ad",
    "Agent",
    "AgentError",
    "Backbone",
    "Budget",
    "BudgetExhaustedError",
    "Decision",
    "DistillConfig",
    "DistillResult",
    "Event",
    "Explanation",
    "Impression",
    "LLMBidPolicy",
    "LLMNegotiator",
    "LocalUpdate",
    "ModelNotFoundError",
    "NegotiationSummary",
    "Plan",
    "PrivateContext",
    "RuleNegotiator",
    "Scenario",
    "StateTable",
    "Student",
    "TrainResult",
    "UserAccountant",
    "accountant",
    "adapter_state",
    "builtin_names",
    "detect_kind",
    "distill",
    "distill_federated",
    "enable_lora",
    "epsilon",
    "explain_in_words",
    "llm_bidder",
    "load_model",
    "load_state",
    "loglik_ctr",
    "loglik_teacher",
    "lora_teacher",
    "nash_price",
    "ndcg_at_k",
    "negotiate_many",
    "noise_multiplier_for",
    "plan",
    "precision_at_k",
    "predict_ctr",
    "privacy",
    "prompts",
    "public_contexts",
    "randomized_response",
    "relevance",
    "rubinstein_share",
    "run_negotiation",
    "save_state",
    "state_nbytes",
    "state_version",
    "target_modules",
    "train",
]
