import kavachosStripe from './index.js'

export const { stripe, getStripe, createStripeBilling, constructEvent, verifySignature, StripeApiError, HANDLED_EVENT_TYPES } = kavachosStripe
export default kavachosStripe
