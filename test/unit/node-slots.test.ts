import test from 'ava';
import { NodeSlots } from '../../src/backup/node-slots.ts';

test('at most N holders per node, waiters in order, other nodes unaffected, a slot freed once', async (t) => {
  const slots = new NodeSlots(1);
  const order: string[] = [];
  const first = await slots.acquire('a');
  const elsewhere = await slots.acquire('b');
  const second = slots.acquire('a').then((free) => (order.push('second'), free));
  const third = slots.acquire('a').then((free) => (order.push('third'), free));
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.deepEqual(order, [], 'both wait while a is held');
  first();
  first();
  const freeSecond = await second;
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.deepEqual(order, ['second'], 'a slot freed twice lets one waiter in, not two');
  freeSecond();
  (await third)();
  t.deepEqual(order, ['second', 'third']);
  elsewhere();
  const two = new NodeSlots(2);
  await two.acquire('a');
  await two.acquire('a');
  let thirdIn = false;
  void two.acquire('a').then(() => (thirdIn = true));
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.false(thirdIn);
});
