"""`nanochat serve`: an OpenAI-compatible HTTP API and a web chat page over one loaded checkpoint.

protocol.py validates requests and shapes responses (OpenAI's JSON, errors included); scheduler.py decodes
every live request together on one worker thread (continuous batching over model/batched.py); text.py turns
tokens into streamed text (whole UTF-8 characters, stop strings held back); app.py is the Starlette app;
server.py binds, loads and runs it under uvicorn. The optional extra `nanochat-cli[serve]` provides Starlette
and uvicorn; nothing here is imported by other commands.
"""
