import kavachosStripe from './index.js'

export const { stripe, createStripeBilling, constructEvent, verifySignature, StripeApiError } = kavachosStripe
export default kavachosStripe
