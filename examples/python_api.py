"""Use alphasignal from Python: the agent is a LangChain Runnable.

Run: python examples/python_api.py
"""

import asyncio

from alphasignal import build_agent
from alphasignal.chart.ohlc import demo_paths

csv, _, chart_png = demo_paths()
agent = build_agent()  # builtin backends: no server, no internet

# one decision from a chart image plus the prices behind it, and two headlines
decision = agent.invoke({"image": chart_png, "csv": csv, "news": ["Apple beats expectations with +12% revenue", "iPhone demand slows in China"]})
print(decision.final_action, decision.final_confidence, decision.meta.signals_aligned)
for reason in decision.reasons:
    print(" -", reason)


# the same agent, async and batched
async def several():
    requests = [{"csv": csv, "news": [text]} for text in ("Record quarterly profit", "Company cuts its outlook")]
    return await agent.abatch(requests)


for d in asyncio.run(several()):
    print(d.sentiment.sentiment, "->", d.final_action, d.final_confidence)

print(decision.model_dump_json(indent=2)[:300], "...")
