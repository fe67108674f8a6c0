"""Redis: the key builder (every key of a convênio carries its shard's hash tag), the hot-path
client, and the Lua scripts' loader."""
