import emulator from './emulator.js'

export const { startStripeEmulator } = emulator
export default emulator
