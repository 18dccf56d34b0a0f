import kavachosStripe from './index.js'

export const { stripe, createStripeBilling, constructEvent, StripeApiError } = kavachosStripe
export default kavachosStripe
