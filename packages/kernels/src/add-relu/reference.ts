import { addReference } from '../add/reference.js';
import { reluReference } from '../relu/reference.js';
import { type AddReluOps, checkAddRelu, checkAddReluBackward } from './spec.js';

/*
 * The composition, y = relu(z) with z = a + b. By the chain rule through z: dz = dy where z > 0 (relu's
 * rule, z recomputed the forward's way), and the sum hands dz to both operands unchanged.
 */
export const addReluReference: AddReluOps = {
  addRelu(a, b) {
    checkAddRelu(a, b);
    return reluReference.relu(addReference.add(a, b));
  },

  addReluBackward(dy, a, b) {
    checkAddReluBackward(dy, a, b);
    const { dx: dz } = reluReference.reluBackward(dy, addReference.add(a, b));
    return addReference.addBackward(dz, a, b);
  },
};
