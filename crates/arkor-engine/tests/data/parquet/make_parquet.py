"""Writes the Parquet fixtures read by arkor-engine's data tests, shaped like Hugging Face
dataset exports (messages as list<struct<role, content>>, snappy and zstd compression).

    pip install pyarrow==21.0.0 && python make_parquet.py
"""
import pyarrow as pa
import pyarrow.parquet as pq

chats = [
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi there!"}],
    [{"role": "user", "content": "Grüße? 👋"}, {"role": "assistant", "content": "Hallo."}],
]
pq.write_table(pa.table({"messages": chats, "source": ["a", "b", "c"]}), "chat.snappy.parquet", compression="snappy")
pq.write_table(pa.table({"prompt": ["2 + 2?", "Capital of Peru?"], "completion": ["4", "Lima"]}), "prompt_completion.zstd.parquet", compression="zstd")
pq.write_table(pa.table({"messages": [[{"role": "robot", "content": "x"}]]}), "bad_role.parquet")
