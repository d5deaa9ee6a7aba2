import asyncio, nats
async def main():
    nc = await nats.connect("nats://127.0.0.1:14998", user="fieldradio", password="pw")
    kv = await nc.jetstream().create_key_value(bucket="fieldradio_x", ttl=1.5)
    await kv.create("1", b"a"); print(await kv.get("1")); print(await kv.update("1", b"b", last=1)); await kv.delete("1")
    await nc.close()
asyncio.run(main())
